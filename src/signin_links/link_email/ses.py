"""Amazon SES v2's side of delivery by email: the ``SendEmail`` request of one email, and what SES's
errors mean. ``sending.py`` (the use case) decides what to do about each.

SES v2 ``SendEmail`` errors. Throttled: SES's sending rate (or daily quota) was reached: later.
Rejecting: the message itself (its address, its content) is refused, and would be again. Anything
else: not sent, not for good (:class:`Deferred`).
"""

from __future__ import annotations

from typing import Any

from signin_links.link_email.rendering import RenderedEmail

THROTTLING_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "LimitExceededException"}
)
REJECTING_CODES = frozenset({"MessageRejected", "BadRequestException", "InvalidParameterValue"})


class Deferred(Exception):
    """SES did not take the email for now (``throttled``: its sending rate; else paused, unavailable,
    no connection): nothing was sent, and the claim is the caller's to give back. ``str()`` is the
    SES error code or the exception's type, safe to log."""

    def __init__(self, error: str, *, throttled: bool) -> None:
        super().__init__(error)
        self.error = error
        self.throttled = throttled


def send_email_request(
    email: RenderedEmail, *, from_address: str, to_address: str, sign_in_token_id: str, configuration_set: str
) -> dict[str, Any]:
    """The ``SendEmail`` parameters of one rendered email: text and HTML bodies in UTF-8, tagged with
    the token id (the configuration set's bounce and complaint events carry it, as ``mail.tags``)."""
    request: dict[str, Any] = {
        "FromEmailAddress": from_address,
        "Destination": {"ToAddresses": [to_address]},
        "Content": {
            "Simple": {
                "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": email.text, "Charset": "UTF-8"},
                    "Html": {"Data": email.html, "Charset": "UTF-8"},
                },
            }
        },
        "EmailTags": [{"Name": "sign_in_token_id", "Value": sign_in_token_id}],
    }
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    return request
