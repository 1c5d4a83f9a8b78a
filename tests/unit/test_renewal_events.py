"""The renewal events: what the mint takes from SignInLinkRenewalRequested (anything else is ignored,
never a mint), and the fresh link's id, derived from the dead one's."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signin_links import ids
from signin_links.audit import RENEWAL_DETAIL_TYPE
from signin_links.renewal import (
    NotARenewal,
    RenewalEvent,
    parse_renewal_event,
    renewal_token_id,
)
from tests.strategies import tricky_text

DEAD = "sit_2TkzQ6HYQwtJtPejPLtQiF"


def event(**detail: Any) -> dict[str, Any]:
    base = {"sign_in_token_id": DEAD, "user_id": "user_ada", "redirect_url": None, "org_id": None, "delivery": "email"}
    return {"source": "signin-links", "detail-type": RENEWAL_DETAIL_TYPE, "detail": {**base, **detail}}


def test_a_renewal_the_stack_delivers_is_parsed() -> None:
    parsed = parse_renewal_event(event(redirect_url="https://app.example.com/cart", org_id="org_1"))
    assert parsed == RenewalEvent(DEAD, "user_ada", "https://app.example.com/cart", "org_1")


@pytest.mark.parametrize(
    "changed",
    [
        {"delivery": "application"},
        {"delivery": None},
        {"sign_in_token_id": "sess_2TkzQ6HYQwtJtPejPLtQiF"},
        {"sign_in_token_id": 7},
        {"user_id": ""},
        {"user_id": ["user_ada"]},
        {"redirect_url": 5},
        {"org_id": {"id": "org_1"}},
    ],
)
def test_anything_else_is_not_a_renewal(changed: dict[str, Any]) -> None:
    with pytest.raises(NotARenewal):
        parse_renewal_event(event(**changed))


@pytest.mark.parametrize("outer", [{"source": "com.example"}, {"detail-type": "SignInLinkMinted"}, {"detail": "x"}])
def test_another_source_or_type_is_not_a_renewal(outer: dict[str, Any]) -> None:
    with pytest.raises(NotARenewal):
        parse_renewal_event({**event(), **outer})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@given(
    mutations=st.dictionaries(
        st.sampled_from(["sign_in_token_id", "user_id", "redirect_url", "org_id", "delivery", "extra"]), json_values
    ),
    whole=st.none() | json_values,
)
def test_any_event_shape_is_parsed_or_not_a_renewal(mutations: dict[str, Any], whole: Any) -> None:
    candidate: Any = whole if whole is not None else event(**mutations)
    try:
        parsed = parse_renewal_event(candidate)
    except NotARenewal as exc:
        assert str(exc)
        return
    assert ids.is_id(parsed.renewal_of, ids.SIGN_IN_TOKEN)
    assert isinstance(parsed.user_id, str) and parsed.user_id
    assert parsed.redirect_url is None or isinstance(parsed.redirect_url, str)


def test_the_fresh_link_s_id_is_a_sign_in_token_id_derived_from_the_dead_one() -> None:
    renewed = renewal_token_id(DEAD)
    assert ids.is_id(renewed, ids.SIGN_IN_TOKEN)
    assert renewed == renewal_token_id(DEAD)
    assert renewed != renewal_token_id("sit_2TkzQ6HYQwtJtPejPLtQiG") != DEAD
    # Pinned: a renewal minted before an upgrade must keep its id after it (redeliveries find it).
    assert renewed == "sit_25wNkfLhaQOi2g4MTy0oLx"
