"""Property tests of POST /accept-token/renew through the real accept handler, on moto.

Whatever the body, content type, Accept header or cookies: never a 5xx; an answer that is not the
neutral page or JSON is a 4xx with its wire code; and no renewal is ever recorded for anything but
the one dead, emailed link of this stack, whose renewal is recorded at most once however it is sent.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Stack, reset_caches
from tests.handlers import HTML, JSON, WRAPPINGS, Answer, accept, accept_post_event, invoke, mint, wrapped
from tests.strategies import tricky_text

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120) | tricky_text
content_types = st.sampled_from(
    ["application/x-www-form-urlencoded", "application/json", "text/plain", "multipart/form-data; boundary=x", ""]
) | text.map(lambda value: value[:60])
accepts = st.sampled_from([HTML, JSON, "*/*", "", "text/html", "image/png"])
cookies = st.none() | st.lists(st.sampled_from(["__session=eyJ.eyJ.x", "__Host-csrf=x", "a=b"]) | text, max_size=3)


def renew_event(body: str, content_type: str, accept_header: str, cookie_list: list[str] | None) -> dict[str, Any]:
    event = accept_post_event(body, content_type=content_type, accept=accept_header, cookies=cookie_list)
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/accept-token/renew"
    event["routeKey"] = event["requestContext"]["routeKey"] = "POST /accept-token/renew"
    return event


CODES = {
    "request_body_invalid", "request_body_too_large", "form_param_missing", "form_param_value_invalid",
    "form_param_unknown", "ticket_invalid_code",
}  # fmt: skip


def check(answer: Answer) -> None:
    assert answer.status in (200, 202, 400, 413, 415, 422), (answer.status, answer.body[:300])
    if answer.status >= 400:
        assert answer.code in CODES, answer.code
    content_type = answer.headers.get("Content-Type", "")
    assert content_type == JSON or content_type.startswith("text/html"), content_type


def renewals(stack: Stack) -> list[str]:
    items = stack.dynamodb.scan(TableName=stack.table_name)["Items"]
    return [item["pk"]["S"] for item in items if item["pk"]["S"].startswith("renew#")]


@pytest.fixture
def dead(stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A used link of this stack whose email was sent: the only renewable thing in the table."""
    monkeypatch.setenv("LINK_RENEWAL", "email")
    reset_caches()
    minted = mint(context, user_id="user_ada")
    assert accept(context, minted["token"]).status == 200
    stack.dynamodb.put_item(
        TableName=stack.table_name, Item={"pk": {"S": f"email#{minted['id']}"}, "status": {"S": "sent"}}
    )
    return minted


@PROPERTY
@given(body=text, content_type=content_types, accept_header=accepts, cookie_list=cookies)
@example(body="token=%ZZ", content_type="application/x-www-form-urlencoded", accept_header=HTML, cookie_list=None)
@example(body='{"token": ["a"]}', content_type=JSON, accept_header=JSON, cookie_list=None)
@example(body="token=" + "x" * 20000, content_type="", accept_header="", cookie_list=None)
def test_any_request_is_answered_cleanly_and_records_nothing(
    stack: Stack, context: Any, dead: dict[str, Any], body: str, content_type: str, accept_header: str,
    cookie_list: list[str] | None,
) -> None:  # fmt: skip
    check(invoke("accept_token", renew_event(body, content_type, accept_header, cookie_list), context))
    assert renewals(stack) == []


@PROPERTY
@given(
    wrapper=st.sampled_from(WRAPPINGS),
    accept_header=accepts,
    junk=text,
    presses=st.integers(min_value=1, max_value=3),
)
@example(wrapper="form-duplicate", accept_header=HTML, junk="\ud800", presses=2)
def test_the_dead_link_in_any_wrapping_is_renewed_at_most_once(
    stack: Stack, context: Any, dead: dict[str, Any], wrapper: str, accept_header: str, junk: str, presses: int
) -> None:
    token = dead["token"]
    body, content_type = wrapped(token, wrapper, junk)
    answers = [
        invoke("accept_token", renew_event(body, content_type, accept_header, None), context) for _ in range(presses)
    ]
    for answer in answers:
        check(answer)
    # The link reached the use case when the answer is not a 4xx: then it is renewed, once (hypothesis
    # keeps the fixture's table between examples: an earlier example may have renewed it already).
    assert renewals(stack) in ([], [f"renew#{dead['id']}"])
    if answers[0].status < 400:
        assert renewals(stack) == [f"renew#{dead['id']}"], (wrapper, answers[0].status)
