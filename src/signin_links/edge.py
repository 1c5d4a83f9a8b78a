"""With ``EdgeProtection=cloudfront-waf``: refuse every HTTP request that did not come through the
stack's CloudFront distribution (and so through its AWS WAF web ACL).

An HTTP API can carry neither a WAF web ACL nor a resource policy, and its ``execute-api`` URL
(like a custom domain mapped to it) stays reachable whatever sits in front of it. So CloudFront
adds a secret header to every request it forwards (``OriginCustomHeaders``, its value from the
``EdgeOriginSecret`` secret through a dynamic reference), and every HTTP function refuses a request
without it, before any other work: ``403 edge_required`` in the error envelope. The value is
compared in constant time; ``previous_header_value`` (optional) is accepted too, so the secret can
be changed without refusing what a distribution still sends (docs/deploying.md, "Abuse
protection"). Without ``EDGE_SECRET_ID`` nothing is installed and a request pays nothing.
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

    Each HTTP function keeps one at module level and configures it from its settings in its cached
    composition root, so the middleware is put on the app only once there is an edge (a stack
    without one never runs it) and follows the settings a test gives."""

    def __init__(self) -> None:
        self.__name__ = "edge_guard"  # Powertools names each middleware frame
        self.read: Callable[[], str] | None = None
        self._installed = False

    def configure(self, app: APIGatewayHttpResolver, settings: Settings) -> None:
        if not settings.edge_secret_id:
            self.read = None
            return
        from signin_links.keyring import fetch_secret

        self.read = partial(fetch_secret, settings.edge_secret_id, settings.secrets_max_age_seconds)
        if not self._installed:
            app.use(middlewares=[self])
            self._installed = True

    def __call__(self, app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
        read = self.read
        if read is not None and not from_the_edge(app.current_event.headers, header_values(read())):
            raise SignInLinksError(ErrorCode.EDGE_REQUIRED)
        return next_middleware(app)
