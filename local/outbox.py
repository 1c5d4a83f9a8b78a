"""The local outbox: every email moto's SES accepted, on a page of the local stack.

moto records each message SES ``SendEmail`` accepts in its backend, and the local stack's emulator
runs in the stack's own process (``local.emulator``), so the stack reads them there and serves:

* ``GET /_local/outbox``: the list, newest first (``Accept: application/json``, or
  ``/_local/outbox.json``, for scripts: id, from, to, subject, body);
* ``GET /_local/outbox/<message id>``: one email's HTML body as a page of its own (its text body
  if it has no HTML), so that a person clicks the link in it and is signed in. moto keeps one body
  per message: the HTML part of a message that has both.

These routes are the local stack's own, not in ``template.yaml``, never deployed. The pages hold
working sign-in links: ``make local`` listens on 127.0.0.1 unless ``HOST`` says otherwise.

:func:`verify_sender` makes the sender's SES identity verified in the emulator (moto refuses a
``SendEmail`` from an unverified address, as SES does).
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from local.account import ACCOUNT_ID, REGION
from local.apigw import HttpRequest, HttpResponse, message_response, not_found
from local.emulator import aws_client

PREFIX = "/_local/outbox"
TEXT = "text/plain; charset=utf-8"
HTML_TAG = re.compile(r"<(?:!doctype|html|body|p|a|div|table)\b", re.IGNORECASE)
# The email is our own rendering with every value escaped; still, no script runs on these pages.
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; form-action 'none'; base-uri 'none'"


def verify_sender(endpoint: str, parameters: dict[str, str]) -> str | None:
    """Verify the identity the template's email parameters send from; returns it (``None``: email is off)."""
    sender = parameters.get("EmailSender", "")
    if not sender:
        return None
    identity = parameters.get("EmailIdentity") or sender.rpartition("@")[2]
    aws_client("sesv2", endpoint).create_email_identity(EmailIdentity=identity)
    return identity


@dataclass(frozen=True)
class Mail:
    id: str
    sender: str
    to: list[str]
    subject: str
    body: str
    is_html: bool

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "from": self.sender, "to": self.to, "subject": self.subject, "body": self.body}


def _recipients(destinations: Any) -> list[str]:
    if isinstance(destinations, dict):
        return [
            str(address)
            for key in ("ToAddresses", "CcAddresses", "BccAddresses")
            for address in destinations.get(key, [])
        ]
    return [str(address) for address in destinations or []]


def _from_raw(message_id: str, source: str, destinations: Any, raw: str) -> Mail:
    parsed = email.message_from_string(raw, policy=email.policy.default)
    part = parsed.get_body(preferencelist=("html", "plain"))
    body = part.get_content() if part is not None else ""
    is_html = part is not None and part.get_content_type() == "text/html"
    return Mail(
        message_id,
        source or str(parsed["From"] or ""),
        _recipients(destinations),
        str(parsed["Subject"] or ""),
        body,
        is_html,
    )


def sent_mail(account_id: str = ACCOUNT_ID, region: str = REGION) -> list[Mail]:
    """Every message moto's SES accepted in this process, oldest first."""
    from moto.ses.models import ses_backends

    found = []
    for message in list(ses_backends[account_id][region].sent_messages):
        if hasattr(message, "raw_data"):
            found.append(_from_raw(message.id, message.source, message.destinations, message.raw_data))
        elif hasattr(message, "body"):
            body = str(message.body)
            is_html = HTML_TAG.search(body) is not None
            found.append(
                Mail(
                    message.id,
                    str(message.source),
                    _recipients(message.destinations),
                    str(message.subject),
                    body,
                    is_html,
                )
            )
        else:  # a templated message: SES renders it, moto does not
            data = f"template {getattr(message, 'template', '')}: {getattr(message, 'template_data', '')}"
            found.append(Mail(message.id, str(message.source), _recipients(message.destinations), "", data, False))
    return found


def _page(title: str, body: str) -> bytes:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#18181b}"
        "table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.4rem .6rem;"
        "border-bottom:1px solid #e4e4e7;vertical-align:top}th{font-size:.85rem;color:#52525b}</style>"
        f"</head><body>{body}</body></html>"
    ).encode()


def _html(status: int, body: bytes, content_type: str = "text/html; charset=utf-8") -> HttpResponse:
    headers = [
        ("Content-Type", content_type),
        ("Cache-Control", "no-store"),
        ("Content-Security-Policy", PAGE_CSP),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return HttpResponse(status, headers, body)


def index(mails: list[Mail]) -> bytes:
    rows = "".join(
        "<tr>"
        f'<td><a href="{PREFIX}/{quote(mail.id, safe="")}">{html.escape(mail.subject) or "(no subject)"}</a></td>'
        f"<td>{html.escape(', '.join(mail.to))}</td><td>{html.escape(mail.sender)}</td>"
        f"<td><code>{html.escape(mail.id)}</code></td>"
        "</tr>"
        for mail in reversed(mails)
    )
    table = (
        f"<table><tr><th>Subject</th><th>To</th><th>From</th><th>SES message id</th></tr>{rows}</table>"
        if mails
        else "<p>No email yet. Put a batch event whose users carry <code>metadata.email</code> on the bus.</p>"
    )
    return _page(
        "Local outbox",
        f"<h1>Local outbox</h1><p>{len(mails)} message(s) accepted by the emulator's SES, newest first. "
        "They are not delivered anywhere: open one and click its link.</p>" + table,
    )


def handle(request: HttpRequest) -> HttpResponse | None:
    """The outbox's answer to ``request``, or ``None`` if it is not an outbox route."""
    path = request.raw_path.rstrip("/") or "/"
    listing = path in (PREFIX, f"{PREFIX}.json")
    if not listing and not path.startswith(f"{PREFIX}/"):
        return None
    if request.method not in ("GET", "HEAD"):
        return message_response(405, "Method Not Allowed")
    mails = sent_mail()
    if listing:
        if path.endswith(".json") or "application/json" in (request.header("accept") or ""):
            body = json.dumps([mail.to_json() for mail in reversed(mails)], ensure_ascii=False).encode()
            return HttpResponse(200, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body)
        return _html(200, index(mails))
    wanted = unquote(path[len(PREFIX) + 1 :])
    mail = next((mail for mail in mails if mail.id == wanted), None)
    if mail is None:
        return not_found()
    return _html(200, mail.body.encode("utf-8"), "text/html; charset=utf-8" if mail.is_html else TEXT)
