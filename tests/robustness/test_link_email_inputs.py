"""Property tests of delivery by email (``signin_links.link_email``): SignInLinkMinted events of any
shape, addresses of any shape, metadata of any shape in the templates, and any SES error.

The mailer runs against in-memory fakes of its store, SES client and publisher (``tests/email_world.py``;
the store's conditional writes mirrored exactly, as ``test_email_markers_fake.py`` checks), so
hypothesis can try thousands of shapes quickly; the same paths run on moto in
``tests/integration/test_link_email.py``.

Invariants: nothing but ``service_unavailable`` ever leaves ``deliver`` (and only when nothing was
sent); SES is called at most once per token across any number of deliveries; what reaches SES is
one ASCII address, a one-line subject, strictly encodable UTF-8, and HTML in which no value added a
tag or an attribute; an ignored event writes, sends and publishes nothing.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from signin_links.config import ConfigError
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.link_email import EmailTemplates, MintedLink, PermanentFailure, recipient
from signin_links.models import EMAIL_FAILED, EMAIL_UNKNOWN
from tests.email_world import (
    BASE,
    NOW,
    PROPERTY,
    SETTINGS,
    TEMPLATES,
    World,
    addresses,
    answers,
    event_of,
    json_values,
    minted_events,
    odd_text,
    ses_exception,
    token_for,
    valid_detail,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


# --- Properties ---------------------------------------------------------------------------------------

TAGS = re.compile(r"[<>\"']")


def check_request(request: dict[str, Any], event: dict[str, Any]) -> None:
    (address,) = request["Destination"]["ToAddresses"]
    assert address.isascii()
    assert address.count("@") == 1
    assert len(address) <= 254
    assert " " not in address
    simple = request["Content"]["Simple"]
    subject, text, body = simple["Subject"]["Data"], simple["Body"]["Text"]["Data"], simple["Body"]["Html"]["Data"]
    for part in (subject, text, body, request["FromEmailAddress"]):
        part.encode("utf-8")  # strictly: no lone surrogate reaches SES
    assert "\n" not in subject
    assert "\r" not in subject
    url = event["detail"]["url"]
    assert text.count(url) == 1
    assert body.count(url) == 2
    # Escaped values add no tag, attribute or quote: the HTML has the template's own, no more.
    bare = TEMPLATES.render(MintedLink("sit_0", "u", url, "t", 0, None, {})).html
    assert len(TAGS.findall(body)) == len(TAGS.findall(bare))


@PROPERTY
@given(event=minted_events())
@example(event=event_of(valid_detail("sit_0000000000000000000001", {"email": "a@example.com", "first_name": "<b>"})))
@example(event=event_of(valid_detail("sit_0000000000000000000002", {"email": "a@example.com", "first_name": 10**4000})))
def test_any_minted_event_is_sent_once_failed_once_or_ignored(event: dict[str, Any]) -> None:
    world = World()
    mailer = world.mailer()
    first = mailer.deliver(event, "req-1")
    assert first.outcome in {"sent", "failed", "ignored"}
    if first.outcome == "ignored":
        assert world.store.writes == 0
        assert not world.ses.requests
        assert not world.publisher.published
        return
    assert first.sign_in_token_id == event["detail"]["sign_in_token_id"]
    if first.outcome == "sent":
        (request,) = world.ses.requests
        check_request(request, event)
        assert not world.publisher.published
    else:
        assert not world.ses.requests
        ((detail_type, detail),) = world.publisher.published
        assert detail_type == "SignInLinkEmailFailed"
        assert detail["reason"] == first.reason
        assert set(detail) == {"sign_in_token_id", "user_id", "batch_id", "reason", "error_code"}
    again = mailer.deliver(event, "req-2")
    assert again.outcome == "duplicate"
    assert len(world.ses.requests) <= 1
    assert len(world.publisher.published) <= 1


@PROPERTY
@given(value=addresses)
def test_recipient_is_one_ascii_address_or_a_permanent_failure(value: Any) -> None:
    try:
        address = recipient({"email": value})
    except PermanentFailure as failure:
        assert failure.reason in {"no_address", "invalid_address"}
        return
    local, domain = address.split("@")
    assert address.isascii()
    assert address == address.strip()
    assert len(address) <= 254
    assert local
    assert "." in domain
    assert not re.search(r"[\s<>,;:\"\\]", address)


@PROPERTY
@given(meta=st.dictionaries(st.sampled_from(["first_name", "email", "x"]), json_values, max_size=3))
def test_any_metadata_renders_escaped(meta: dict[str, Any]) -> None:
    link = MintedLink("sit_0", "u<\"'>", f"{BASE}/accept-token?token=a.b.c", "a.b.c", (NOW + 60) * 1000, "b<", meta)
    rendered = TEMPLATES.render(link)
    bare = TEMPLATES.render(replace(link, user_id="u", batch_id=None, metadata={})).html
    assert len(TAGS.findall(rendered.html)) == len(TAGS.findall(bare))
    for part in (rendered.subject, rendered.text, rendered.html):
        part.encode("utf-8")
    assert "\n" not in rendered.subject


def templates_showing_metadata() -> list[EmailTemplates]:
    """The default templates, and a team's that show metadata fields in every part."""
    loaded = [TEMPLATES]
    for body in ("$url ${metadata.first_name|}", "$url ${metadata.note|none}"):
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "subject.txt").write_text("${metadata.first_name|Hi} ${metadata.note|}")
            (Path(folder) / "body.txt").write_text(body)
            (Path(folder) / "body.html").write_text(f"<p>{body}</p>")
            loaded.append(EmailTemplates.load(Path(folder)))
    return loaded


SHOWING_METADATA = templates_showing_metadata()
SPOOF_PAYLOADS = st.sampled_from(
    ["https://evil.example", "evil.example", "www.evil.test", "eve@evil.example", "<b>", "</p>", "x\u202ey",
     "evil\u3002example", "mailto:eve", "//evil.example"]
)  # fmt: skip
spoofing_text = st.tuples(st.text(max_size=20) | odd_text, SPOOF_PAYLOADS, st.text(max_size=20) | odd_text).map("".join)


@PROPERTY
@given(
    meta=st.fixed_dictionaries(
        {"first_name": spoofing_text | st.text(max_size=80) | json_values, "note": spoofing_text | json_values},
        optional={"locale": st.sampled_from(["de", "ar", "ja", "pt_BR", "xx"]) | json_values},
    )
)
@example(meta={"first_name": "Your account is locked, visit https://evil.example", "note": "x"})
def test_metadata_never_shows_a_link_or_markup_in_any_part(meta: dict[str, Any]) -> None:
    url = f"{BASE}/accept-token?token=a.b.c"
    link = MintedLink("sit_0", "u", url, "a.b.c", (NOW + 60) * 1000, None, meta)
    for templates in SHOWING_METADATA:
        rendered = templates.render(link)
        for part in (rendered.subject, rendered.text, rendered.html):
            shown = part.replace(url, "")
            assert not re.search(r"evil|://|www\.|@|\u202e|mailto", shown, re.IGNORECASE), shown
        assert not re.search(r"[<>]", rendered.subject + rendered.text.replace(url, ""))
        assert len(rendered.subject) <= 2 * 64 + 1


@PROPERTY
@given(script=st.lists(answers, max_size=8))
def test_any_ses_answer_sends_at_most_once_and_never_strands_a_claim(script: list[tuple[str, str]]) -> None:
    """An event invoked directly: one SendEmail per invocation; when SES did not take it, the
    invocation fails for Lambda's retry with the claim given back."""
    world = World()
    world.ses.script = [ses_exception(kind, code) for kind, code in script]
    mailer = world.mailer()
    event = event_of(valid_detail("sit_0000000000000000000009", {"email": "ada@example.com"}))
    outcomes = []
    for _attempt in range(3):  # the invocation, then Lambda's two retries (same request id)
        try:
            outcomes.append(mailer.deliver(event, "req-1").outcome)
        except SignInLinksError as exc:
            assert exc.code is ErrorCode.SERVICE_UNAVAILABLE
            assert "sit_0000000000000000000009" not in world.store.markers  # nothing sent: the claim is back
            outcomes.append("retry")
            continue
        break
    assert len(world.ses.accepted) <= 1
    assert len(world.ses.requests) == len(outcomes)  # one SendEmail per invocation, never repeated
    final = outcomes[-1]
    marker = world.store.markers.get("sit_0000000000000000000009")
    if final == "sent":
        assert marker is not None
        assert marker.status == "sent"
        assert len(world.ses.accepted) == 1
    elif final in ("failed", "unknown"):
        assert marker is not None
        assert marker.status in (EMAIL_FAILED, EMAIL_UNKNOWN)
        assert marker.announced
        assert [detail["reason"] for _, detail in world.publisher.published] == [marker.reason]
    else:
        assert final == "retry"
        assert marker is None
        assert not world.ses.accepted
    # And whatever happened, a later duplicate delivery sends nothing new.
    if final != "retry":
        assert mailer.deliver(event, "req-2").outcome == "duplicate"
        assert len(world.ses.accepted) <= 1


def test_a_token_signed_long_ago_is_a_permanent_failure_not_an_ignored_event() -> None:
    world = World()
    detail = valid_detail("sit_0000000000000000000003", {"email": "ada@example.com"})
    detail["url"] = f"{BASE}/accept-token?token={token_for('sit_0000000000000000000003', issued_at=NOW - 7200)}"
    assert world.mailer().deliver(event_of(detail), "req-1").reason == "link_expired"
    assert time.time() > 0
    assert not world.ses.requests


def test_without_accept_base_url_the_published_one_decides_which_links_are_ours() -> None:
    world = World()
    settings = replace(SETTINGS, accept_base_url="")
    mailer = world.mailer(settings, published_base_url=lambda: BASE + "/")
    ours = event_of(valid_detail("sit_0000000000000000000004", {"email": "ada@example.com"}))
    assert mailer.deliver(ours, "req-1").outcome == "sent"
    elsewhere = valid_detail("sit_0000000000000000000005", {"email": "ada@example.com"})
    elsewhere["url"] = elsewhere["url"].replace(BASE, "https://other.example.com")
    assert mailer.deliver(event_of(elsewhere), "req-1").outcome == "ignored"
    with pytest.raises(ConfigError, match="ACCEPT_BASE_URL_PARAMETER"):
        world.mailer(settings)
