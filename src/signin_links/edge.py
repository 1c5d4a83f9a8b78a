"""With ``EdgeProtection=cloudfront-waf``: refuse every HTTP request that did not come through the
stack's CloudFront distribution (and so through its AWS WAF web ACL).

An HTTP API can carry neither a WAF web ACL nor a resource policy, and its ``execute-api`` URL
(like a custom domain mapped to it) stays reachable whatever sits in front of it. So CloudFront
adds a secret header to every request it forwards (``OriginCustomHeaders``, its value from the
``EdgeOriginSecret`` secret through a dynamic reference), and every HTTP function refuses a request
without it, before any other work: ``403 edge_required`` in the error envelope. The value is
compared in constant time; ``previous_header_value`` (optional) is accepted too, so the secret can
be changed without refusing what a distribution still sends (docs/deploying.md, "Abuse
protection"). Without ``EDGE_SECRET_ID`` the guard passes every request on.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from signin_links.errors import ErrorCode, SignInLinksError, unavailable
from signin_links.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

    from signin_links.config import Settings

HEADER = "x-signin-links-edge"  # API Gateway (payload 2.0) hands headers over in lower case
MIN_VALUE_LENGTH = 32


def header_values(raw: str) -> tuple[bytes, ...]:
    """The values a request may carry, from the secret's JSON; a malformed secret is an operator
    error (503, logged), never a reason to let requests through."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    values = [data.get(name) for name in ("header_value", "previous_header_value")] if isinstance(data, dict) else []
    usable = [value for value in values if isinstance(value, str) and len(value) >= MIN_VALUE_LENGTH]
    if not usable or usable[0] is not values[0]:  # CloudFront sends header_value: it must be usable
        logger.error("the edge origin secret holds no usable header_value")
        raise unavailable("The edge origin secret")
    return tuple(value.encode("utf-8", "surrogatepass") for value in usable)


def from_the_edge(headers: dict[str, str] | None, accepted: tuple[bytes, ...]) -> bool:
    """Whether ``headers`` carry one of the ``accepted`` values (every value compared, in constant time)."""
    presented = (headers or {}).get(HEADER)
    if not isinstance(presented, str):
        return False
    given = presented.encode("utf-8", "surrogatepass")
    matched = False
    for value in accepted:
        matched |= hmac.compare_digest(given, value)
    return matched


class EdgeGuard:
    """A Powertools middleware refusing what did not come through the edge (``403 edge_required``).

    Each HTTP function makes one at module level, which puts it on the app before any route is
    resolved: Powertools builds a route's middleware stack once, at its first request, so a guard
    added later would never run on the routes already called. Its cached composition root then
    configures it from the settings: without an edge ``read`` is ``None`` and the guard only passes
    the request on (one function call)."""

    def __init__(self, app: APIGatewayHttpResolver) -> None:
        self.__name__ = "edge_guard"  # Powertools names each middleware frame
        self.read: Callable[[], str] | None = None
        app.use(middlewares=[self])

    def configure(self, settings: Settings) -> None:
        if not settings.edge_secret_id:
            self.read = None
            return
        from signin_links.keyring import fetch_secret

        self.read = partial(fetch_secret, settings.edge_secret_id, settings.secrets_max_age_seconds)

    def __call__(self, app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
        read = self.read
        if read is not None and not from_the_edge(app.current_event.headers, header_values(read())):
            raise SignInLinksError(ErrorCode.EDGE_REQUIRED)
        return next_middleware(app)
