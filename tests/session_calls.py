"""Calls to the real handlers' session routes (``/session/refresh`` on the accept function, Clerk's
``/v1/sessions`` on the sessions function) with the events/ files, and what their answers hold."""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from typing import Any

from tests.conftest import Stack, load_event
from tests.handlers import Answer, accept, invoke, mint

ALLOWED = "https://app.example.com"  # on the test stack's ALLOWED_REDIRECT_ORIGINS


def signed_in(context: Any, user_id: str = "user_routes", **fields: Any) -> dict[str, str]:
    """Accept a fresh link: the session's id, its token and both cookie values."""
    answer = accept(context, mint(context, user_id=user_id, **fields)["token"])
    assert answer.status == 200, answer.code
    jar: SimpleCookie = SimpleCookie()
    for cookie in answer.cookies:
        jar.load(cookie)
    return {
        "id": answer.json()["created_session_id"],
        "session": jar["__session"].value,
        "refresh": jar["__Host-refresh"].value,
    }


def browser_event(name: str, *, cookies: list[str] | None = None, **headers: str) -> dict[str, Any]:
    event = load_event(name)
    if cookies is not None:
        event["cookies"] = cookies
    else:
        event.pop("cookies", None)
    for header in ("sec-fetch-site", "sec-fetch-mode", "origin"):
        event["headers"].pop(header, None)
    event["headers"].update({key.replace("_", "-"): value for key, value in headers.items()})
    return event


def refresh(context: Any, refresh_value: str | None, **headers: str) -> Answer:
    cookies = [] if refresh_value is None else [f"__Host-refresh={refresh_value}"]
    return invoke("accept_token", browser_event("refresh_session.json", cookies=cookies, **headers), context)


def cleared(answer: Answer) -> bool:
    names = sorted(cookie.split("=", 1)[0] for cookie in answer.cookies)
    # __refresh too: the name earlier versions set, cleared so a browser still holding it drops it.
    expected = ["__Host-refresh", "__refresh", "__session"]
    return names == expected and all("Max-Age=0" in cookie for cookie in answer.cookies)


def api(
    context: Any, name: str, session_id: str | None = None, body: Any = None, query: dict[str, str] | None = None
) -> Answer:
    event = load_event(name)
    if session_id is not None:
        event["pathParameters"] = {"session_id": session_id}
        event["rawPath"] = event["requestContext"]["http"]["path"] = event["rawPath"].replace(
            "sess_0000000000000000000000", session_id
        )
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if query is not None:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{key}={value}" for key, value in query.items())
    return invoke("sessions", event, context)


def set_attribute(stack: Stack, pk: str, name: str, value: int) -> None:
    stack.dynamodb.update_item(
        TableName=stack.table_name,
        Key={"pk": {"S": pk}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": name},
        ExpressionAttributeValues={":v": {"N": str(value)}},
    )
