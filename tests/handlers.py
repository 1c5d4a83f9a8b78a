"""Calling the real handlers with the events/ files (integration and robustness tests, mint and accept)."""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

import jwt

from signin_links.cookies import REFRESH_HOST_ONLY as REFRESH
from signin_links.keyring import Keyring, parse_keyring
from signin_links.models import SignInTokenRecord, TokenStatus
from signin_links.store import TokenStore
from signin_links.tickets import sign_ticket
from tests.conftest import Stack, load_event, load_function

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
JSON = "application/json"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def is_json(self) -> bool:
        return self.headers.get("Content-Type") == JSON

    @property
    def code(self) -> str | None:
        """The wire code of an error (JSON envelope or the HTML page's ``error-code``)."""
        if self.is_json:
            errors = self.json().get("errors") if isinstance(self.json(), dict) else None
            return str(errors[0]["code"]) if errors else None
        marker = '<code id="error-code">'
        if marker in self.body:
            return self.body.split(marker, 1)[1].split("<", 1)[0]
        return None

    def session_cookie(self) -> SimpleCookie:
        """The ``__session`` cookie set (exactly one), in a jar (``jar["__session"]``)."""
        found = [cookie for cookie in self.cookies if cookie.startswith("__session=")]
        assert len(found) == 1, self.cookies
        jar: SimpleCookie = SimpleCookie()
        jar.load(found[0])
        return jar

    def refresh_cookie(self, name: str = REFRESH) -> SimpleCookie:
        """The refresh cookie set (exactly one; ``__Host-refresh`` unless ``name`` says otherwise), in a
        jar (``jar[name]``)."""
        found = [cookie for cookie in self.cookies if cookie.startswith(f"{name}=")]
        assert len(found) == 1, self.cookies
        jar: SimpleCookie = SimpleCookie()
        jar.load(found[0])
        return jar


def form_token(page: Answer) -> tuple[str, str]:
    """The CSRF field of a rendered page's form, and the ``__Host-csrf`` cookie ("name=value") it set."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.body)
    assert match, page.body
    (cookie,) = [value for value in page.cookies if value.startswith("__Host-csrf=")]
    jar: SimpleCookie = SimpleCookie()
    jar.load(cookie)
    return match.group(1), f"__Host-csrf={jar['__Host-csrf'].value}"


def invoke(directory: str, event: dict[str, Any], context: Any) -> Answer:
    response = load_function(directory).lambda_handler(event, context)
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return Answer(response["statusCode"], response.get("headers") or {}, response.get("cookies") or [], body)


def call_mint(event: dict[str, Any], context: Any) -> tuple[int, dict[str, str], Any]:
    """The mint function's answer to ``event``: status, headers, and the JSON body (``None`` if empty)."""
    response = load_function("mint_link").lambda_handler(event, context)
    body = json.loads(response["body"]) if response.get("body") else None
    return response["statusCode"], response.get("headers") or {}, body


def create_event(body: Any, *, base64_encoded: bool = False, **headers: str) -> dict[str, Any]:
    """``POST /v1/sign_in_tokens`` with ``body`` (a string as it is, anything else as JSON) and extra headers."""
    event = load_event("create_sign_in_token.json")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    event["isBase64Encoded"] = base64_encoded
    event["headers"].update(headers)
    return event


def mint(context: Any, user_id: str = "user_123", **fields: Any) -> dict[str, Any]:
    event = load_event("create_sign_in_token.json")
    event["body"] = json.dumps({"user_id": user_id, **fields})
    answer = invoke("mint_link", event, context)
    assert answer.status == 200, answer.body
    minted: dict[str, Any] = answer.json()
    return minted


def revoke_event(token_id: str) -> dict[str, Any]:
    event = load_event("revoke_sign_in_token.json")
    event["pathParameters"] = {"sign_in_token_id": token_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/sign_in_tokens/{token_id}/revoke"
    return event


def accept_post_event(
    body: str, *, content_type: str = "application/x-www-form-urlencoded", accept: str = HTML,
    cookies: list[str] | None = None, base64_encoded: bool = False,
) -> dict[str, Any]:  # fmt: skip
    event = load_event("accept_token_post.json")
    event["body"] = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode() if base64_encoded else body
    event["isBase64Encoded"] = base64_encoded
    event["headers"]["content-type"] = content_type
    event["headers"]["accept"] = accept
    if cookies is not None:
        event["cookies"] = cookies
    return event


def encoded(value: str) -> str:
    """``value`` percent-encoded for a query or form; a lone surrogate (the generators of
    tests/strategies.py draw them) becomes the bytes a hostile client can send (%ED%A0%80, not valid
    UTF-8) rather than an error in the test itself."""
    return quote(value, errors="surrogatepass")


def accept(
    context: Any, token: Any, *, as_json: bool = True, cookies: list[str] | None = None, confirm: str | None = None
) -> Answer:
    """POST /accept-token; ``confirm`` sends the confirmation field (``switch_user``)."""
    if as_json:
        body: dict[str, Any] = {"token": token} if confirm is None else {"token": token, "confirm": confirm}
        event = accept_post_event(json.dumps(body), content_type=JSON, accept=JSON, cookies=cookies)
    else:
        extra = "" if confirm is None else f"&confirm={encoded(confirm)}"
        event = accept_post_event(f"token={encoded(str(token))}{extra}", cookies=cookies)
    return invoke("accept_token", event, context)


# A real token sent in each way a client may wrap it (the accept and renew property tests).
WRAPPINGS = ("form", "form+junk", "form-duplicate", "json", "json+junk", "json-list", "padded")


def wrapped(token: str, wrapper: str, junk: str) -> tuple[str, str]:
    """``token`` as the body of a form or JSON POST in the way ``wrapper`` names; (body, content type)."""
    form = "application/x-www-form-urlencoded"
    return {
        "form": (f"token={quote(token)}", form),
        "form+junk": (f"token={quote(token)}&{encoded(junk)}=1", form),
        "form-duplicate": (f"token={quote(token)}&token={encoded(junk)}", form),
        "json": (json.dumps({"token": token}), JSON),
        "json+junk": (json.dumps({"token": token, "junk": junk}), JSON),
        "json-list": (json.dumps({"token": [token]}), JSON),
        "padded": (f"token={encoded(' ' + token + ' ')}", form),
    }[wrapper]


def accept_get_event(token: str | None, accept: str = HTML, method: str = "GET") -> dict[str, Any]:
    event = load_event("accept_token_get.json" if method == "GET" else "accept_token_head.json")
    if token is None:
        event["rawQueryString"] = ""
        event.pop("queryStringParameters", None)
    else:
        event["rawQueryString"] = f"token={encoded(token)}"
        event["queryStringParameters"] = {"token": token}
    event["headers"]["accept"] = accept
    return event


def keyring(stack: Stack, variable: str) -> Keyring:
    raw = stack.secretsmanager.get_secret_value(SecretId=stack.env[variable])["SecretString"]
    return parse_keyring(raw)


def status_of(stack: Stack, token_id: str) -> str | None:
    item = stack.item(token_id)
    return None if item is None else str(item["status"]["S"])


def item_count(stack: Stack) -> int:
    return int(stack.dynamodb.scan(TableName=stack.table_name, Select="COUNT")["Count"])


# --- The accept function as the integration tests call it ------------------------------------------


def call_accept(event: dict[str, Any], context: Any) -> Answer:
    """The accept function's answer to ``event``."""
    return invoke("accept_token", event, context)


def get(context: Any, token: str | None = None, **headers: str) -> Answer:
    """GET /accept-token (with ``token`` in the query, and extra headers)."""
    event = accept_get_event(token)
    event["headers"].update(headers)
    return call_accept(event, context)


def head(context: Any, token: str = "x") -> Answer:
    """HEAD /accept-token?token=... (the events/ file's headers as they are)."""
    event = load_event("accept_token_head.json")
    event["rawQueryString"] = f"token={encoded(token)}"
    event["queryStringParameters"] = {"token": token}
    return call_accept(event, context)


def post(
    context: Any,
    token: str | None,
    *,
    accept: str = HTML,
    cookie: str | None = None,
    extra_cookies: tuple[str, ...] = (),
    as_json: bool = False,
    base64_body: bool = False,
    body: str | None = None,
) -> Answer:
    event = load_event("accept_token_post.json")
    if body is None:
        body = json.dumps({"token": token}) if as_json else ("" if token is None else f"token={encoded(token)}")
    if as_json:
        event["headers"]["content-type"] = "application/json"
    if base64_body:
        body = base64.b64encode(body.encode()).decode()
    event["body"] = body
    event["isBase64Encoded"] = base64_body
    event["headers"]["accept"] = accept
    if cookie:
        event["cookies"] = ["theme=dark", *(f"__session={value}" for value in extra_cookies), f"__session={cookie}"]
    return call_accept(event, context)


def revoke(context: Any, token_id: str) -> None:
    """Revoke a sign-in token through the mint function (which must answer 200)."""
    assert invoke("mint_link", revoke_event(token_id), context).status == 200


def craft(
    stack: Stack,
    *,
    token_id: str = "sit_0000000000000000000042",
    issued_at: int | None = None,
    expires_in: int = 600,
    status: TokenStatus = TokenStatus.PENDING,
    redirect_url: str | None = None,
    store: bool = True,
) -> str:
    """A token signed with the stack's ticket key, for a record written straight to the table."""
    issued = int(time.time()) if issued_at is None else issued_at
    key = keyring(stack, "TICKET_SIGNING_KEYRING_SECRET_ID").current()
    token = sign_ticket(key, sid=token_id, issued_at=issued, expires_in_seconds=expires_in, redirect_url=redirect_url)
    if store:
        record = SignInTokenRecord(
            id=token_id,
            user_id="user_crafted",
            status=status,
            created_at=issued * 1000,
            updated_at=issued * 1000,
            expires_at=issued + expires_in,
            expires_in_seconds=expires_in,
            redirect_url=redirect_url,
        )
        TokenStore(stack.dynamodb, stack.table_name).create(record, ttl=issued + expires_in + 3600)
    return token


def session_claims(stack: Stack, token: str) -> dict[str, Any]:
    """Verify a session JWT as an app would: against the JWKS this function serves."""
    header = jwt.get_unverified_header(token)
    jwks = keyring(stack, "SESSION_KEYRING_SECRET_ID").jwks()
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    claims: dict[str, Any] = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"])
    return claims
