"""The edge header (signin_links/edge.py): only the exact value CloudFront adds lets a request in."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from signin_links.edge import HEADER, from_the_edge, header_values
from signin_links.errors import SignInLinksError

VALUE = "v" * 48
PREVIOUS = "p" * 48
ACCEPTED = header_values(json.dumps({"header_value": VALUE, "previous_header_value": PREVIOUS}))

names = st.sampled_from(
    [HEADER, HEADER.upper(), f" {HEADER}", f"{HEADER} ", f"{HEADER}2", f"x-{HEADER}", "x-edge"]
) | st.text(max_size=30)
values = (
    st.sampled_from([VALUE, PREVIOUS, VALUE[:-1], VALUE + " ", " " + VALUE, f"{VALUE},{VALUE}", VALUE.upper(), ""])
    | st.text(max_size=200)
    | st.text(alphabet=st.characters(codec="utf-8"), min_size=47, max_size=49)
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=st.dictionaries(names, values, max_size=6))
@example(headers={HEADER: "\ud800" * 48})
@example(headers={HEADER: VALUE + "\x00"})
def test_only_the_exact_value_under_the_exact_name_passes(headers: dict[str, str]) -> None:
    """API Gateway hands headers over in lower case, a repeated header comma-joined: only
    ``x-signin-links-edge`` holding exactly one accepted value passes; nothing raises."""
    expected = headers.get(HEADER) in (VALUE, PREVIOUS)
    assert from_the_edge(headers, ACCEPTED) is expected


@pytest.mark.parametrize("headers", [None, {}, {HEADER: None}, {HEADER: 7}])
def test_missing_or_odd_headers_do_not_pass(headers: object) -> None:
    assert from_the_edge(headers, ACCEPTED) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "null",
        "[]",
        json.dumps({"header_value": "short"}),
        json.dumps({"previous_header_value": PREVIOUS}),  # no current value
        json.dumps({"header_value": "short", "previous_header_value": PREVIOUS}),  # CloudFront sends "short"
        json.dumps({"header_value": ["a" * 48]}),
    ],
)
def test_a_secret_without_a_usable_value_is_unavailable_never_open(raw: str) -> None:
    with pytest.raises(SignInLinksError) as caught:
        header_values(raw)
    assert caught.value.status == 503
