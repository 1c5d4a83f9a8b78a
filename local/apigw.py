"""API Gateway HTTP API, locally: route matching, payload 2.0 events, and Lambda results to HTTP.

Pure functions (no sockets), so the event shape can be checked against ``events/*.json``.
What AWS does and this module copies:

* routes: ``METHOD /path`` with ``{param}`` and greedy ``{param+}``; ``ANY`` matches every method;
  the most specific route wins (literal segments before parameters, greedy last, a method before
  ``ANY``); ``$default`` catches the rest. No match: 404 ``{"message":"Not Found"}``. HEAD matches
  only a route that declares HEAD (or ANY).
* event: ``version`` 2.0, lowercased headers with repeats joined by ``,``, the ``Cookie`` header moved
  to a ``cookies`` array, ``queryStringParameters`` with repeats joined by ``,``, ``pathParameters``,
  ``requestContext`` (``requestId`` unique per request, ``stage`` ``$default``, ``time`` and
  ``timeEpoch``), and the body as text for ``text/*``, ``application/json``, ``application/xml`` and
  ``application/javascript``, base64 (``isBase64Encoded: true``) for everything else, form posts
  and a missing ``Content-Type`` included. Keys with nothing to say are left out, as AWS does.
* result: ``statusCode``, ``headers``, ``cookies`` (one ``Set-Cookie`` each), ``body`` and
  ``isBase64Encoded``; a result without ``statusCode`` is the "shorthand": 200, JSON, the result
  serialised as the body. A handler that raised, or a malformed result: 500
  ``{"message":"Internal Server Error"}``. A header HTTP cannot carry (a name that is not a token,
  a value with a control character or a character beyond Latin-1) makes the result malformed: a
  500 the client sees, where ``http.server`` would raise half-way and drop the connection.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from local.account import ACCOUNT_ID
from local.template import Route

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
TEXT_TYPES = ("application/json", "application/xml", "application/javascript")
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_parameters: dict[str, str]

    @property
    def route_key(self) -> str:
        return "$default" if self.route.path == "$default" else f"{self.route.method} {self.route.path}"


@dataclass(frozen=True)
class _CompiledRoute:
    route: Route
    pattern: re.Pattern[str]
    rank: tuple[int, ...]


def _compile(route: Route) -> _CompiledRoute:
    segments = [segment for segment in route.path.split("/") if segment]
    parts = []
    literal = params = greedy = 0
    for segment in segments:
        name = re.fullmatch(r"\{([A-Za-z0-9_.-]+)(\+?)\}", segment)
        if name and name.group(2):
            parts.append("(.+)")
            greedy += 1
        elif name:
            parts.append("([^/]+)")
            params += 1
        else:
            parts.append(re.escape(segment))
            literal += 1
    pattern = re.compile("/" + "/".join(parts) + ("/?" if parts else ""))
    # Sort key (ascending): no greedy first, more literal segments, fewer parameters, a method before ANY.
    rank = (greedy, -literal, params, 1 if route.method == "ANY" else 0)
    return _CompiledRoute(route, pattern, rank)


class Router:
    """Finds the template route for a request, as API Gateway would."""

    def __init__(self, routes: Iterable[Route]) -> None:
        routes = list(routes)
        self.default = next((route for route in routes if route.path == "$default"), None)
        compiled = [_compile(route) for route in routes if route.path != "$default"]
        self.routes = sorted(compiled, key=lambda item: item.rank)

    def match(self, method: str, path: str) -> RouteMatch | None:
        method = method.upper()
        for item in self.routes:
            if item.route.method not in (method, "ANY"):
                continue
            found = item.pattern.fullmatch(path)
            if found is None:
                continue
            names = re.findall(r"\{([A-Za-z0-9_.-]+)\+?\}", item.route.path)
            values = found.groups()
            return RouteMatch(item.route, {name: unquote(value) for name, value in zip(names, values, strict=True)})
        if self.default is not None and self.default.method in (method, "ANY"):
            return RouteMatch(self.default, {})
        return None


def is_text(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in TEXT_TYPES


def request_id() -> str:
    """An id shaped like API Gateway's (``JlPZ5gXGoAMEPeQ=``), unique per request."""
    return base64.b64encode(secrets.token_bytes(10)).decode("ascii")


@dataclass
class HttpRequest:
    method: str
    target: str  # path?query, as on the request line
    headers: list[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"
    received_at: float = field(default_factory=time.time)

    @property
    def raw_path(self) -> str:
        return self.target.split("?", 1)[0] or "/"

    @property
    def raw_query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name]
        return ",".join(values) if values else None


def http_event(request: HttpRequest, match: RouteMatch, *, domain_name: str, api_id: str = "local") -> dict[str, Any]:
    """The payload 2.0 event API Gateway would send for ``request`` on ``match``."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for key, value in request.headers:
        name = key.lower()
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    port = domain_name.rsplit(":", 1)[1] if ":" in domain_name else "80"
    headers.setdefault("host", domain_name)
    headers["x-forwarded-for"] = request.source_ip
    headers["x-forwarded-port"] = port
    headers["x-forwarded-proto"] = "http"
    epoch_ms = int(request.received_at * 1000)
    headers["x-amzn-trace-id"] = f"Root=1-{int(request.received_at):08x}-{secrets.token_hex(12)}"
    if request.body:
        headers["content-length"] = str(len(request.body))
    user_agent = headers.get("user-agent", "")
    route_key = match.route_key
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if request.raw_query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": request.method.upper(),
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": user_agent,
        },
        "requestId": request_id(),
        "routeKey": route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(request.received_at)),
        "timeEpoch": epoch_ms,
    }
    if request.body:
        if is_text(headers.get("content-type")):
            try:
                event["body"] = request.body.decode("utf-8")
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(request.body).decode("ascii")
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(request.body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    if match.path_parameters:
        event["pathParameters"] = match.path_parameters
    return event


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def message_response(status: int, message: str) -> HttpResponse:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("Content-Type", JSON_TYPE)], body)


NOT_FOUND = 404
INTERNAL_ERROR = 500


def not_found() -> HttpResponse:
    return message_response(NOT_FOUND, "Not Found")


def internal_error() -> HttpResponse:
    return message_response(INTERNAL_ERROR, "Internal Server Error")


def too_large() -> HttpResponse:
    return message_response(413, "Request Entity Too Large")


def sendable(name: str, value: str) -> bool:
    """Whether ``name: value`` is a header line HTTP/1.1 (and ``http.server``) can carry."""
    if not _FIELD_NAME.fullmatch(name):
        return False
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any((char < " " and char != "\t") or char == "\x7f" for char in value)


def http_response(result: Any) -> HttpResponse:
    """What API Gateway sends to the client for a payload 2.0 Lambda ``result``."""
    if not isinstance(result, dict) or "statusCode" not in result:
        body = json.dumps(result).encode()
        return HttpResponse(200, [("Content-Type", JSON_TYPE)], body)
    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return internal_error()
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), value if isinstance(value, str) else json.dumps(value)))
    for cookie in result.get("cookies") or []:
        headers.append(("Set-Cookie", str(cookie)))
    if not all(sendable(name, value) for name, value in headers):
        return internal_error()
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(str(raw_body), validate=True)
        except ValueError:
            return internal_error()
    else:
        body = (raw_body if isinstance(raw_body, str) else json.dumps(raw_body)).encode("utf-8")
    return HttpResponse(status, headers, body)
