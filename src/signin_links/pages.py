"""The accept page and its answers, rendered from a tiny ``templates/`` directory.

Every value is HTML-escaped (``string.Template`` + ``html.escape``); the page's one script and one
stylesheet are static files inlined verbatim and allowed by their SHA-256 hashes in the
Content-Security-Policy, so no other inline code can run. Every response of the accept function
carries :meth:`Pages.security_headers` (see :meth:`Pages.secure`).
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.shared.cookies import Cookie

from signin_links.errors import ErrorCode, SignInLinksError

HTML = "text/html; charset=utf-8"
HINT = "Ask for a new sign-in link."


@dataclass(frozen=True)
class ErrorText:
    title: str
    message: str


# Plain-language texts for the failures a person clicking a link can meet.
ERROR_TEXTS = {
    ErrorCode.TICKET_INVALID: ErrorText(
        "This sign-in link is not valid",
        "The link is incomplete or was not issued by this site. Make sure you opened the whole link from the email.",
    ),
    ErrorCode.TICKET_EXPIRED: ErrorText(
        "This sign-in link has expired",
        "Sign-in links only work for a limited time, and this one is past it.",
    ),
    ErrorCode.SIGN_IN_TOKEN_ALREADY_USED: ErrorText(
        "This sign-in link was already used",
        "Each sign-in link works once, and this one has already signed someone in.",
    ),
    ErrorCode.SIGN_IN_TOKEN_REVOKED: ErrorText(
        "This sign-in link was cancelled",
        "The site that sent this link has withdrawn it.",
    ),
}


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


class Pages:
    """Renders the accept page, its results and its error pages as Powertools responses."""

    def __init__(self, templates: Path, *, auto_submit: bool, redirect_origins: tuple[str, ...] = ()) -> None:
        def read(name: str) -> str:
            return (templates / name).read_text(encoding="utf-8")

        self._layout = Template(read("page.html"))
        self._fragments = {
            name: Template(read(f"{name}.html"))
            for name in ("accept", "error", "signed_in", "redirect", "confirm", "sign_out", "signed_out")
        }
        script = read("accept.js")
        style = read("accept.css")
        self._script = f"<script>{script}</script>"
        self._style = style
        self.auto_submit = auto_submit
        # A form's target and the redirects that follow its submission are both checked against
        # form-action (CSP 3), so the allowed redirect origins must be listed next to 'self'.
        form_action = " ".join(["'self'", *redirect_origins])
        self.csp = (
            f"default-src 'none'; script-src {_sha256_source(script)}; style-src {_sha256_source(style)}; "
            f"form-action {form_action}; base-uri 'none'; frame-ancestors 'none'"
        )

    def security_headers(self) -> dict[str, str]:
        return {
            "Cache-Control": "no-store",
            "Content-Security-Policy": self.csp,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        }

    def secure(self, response: dict[str, Any]) -> dict[str, Any]:
        """Add the security headers to a resolved response (a route may set its own Cache-Control)."""
        headers = response.setdefault("headers", {})
        present = {name.lower() for name in headers}
        for name, value in self.security_headers().items():
            if name.lower() not in present:
                headers[name] = value
        return response

    def _render(
        self,
        page_title: str,
        fragment: str,
        *,
        script: bool = False,
        trusted: dict[str, str] | None = None,
        **values: str,
    ) -> str:
        """``values`` are escaped; ``trusted`` holds fixed markup chosen by this module only."""
        escaped = {name: html.escape(value, quote=True) for name, value in values.items()}
        content = self._fragments[fragment].substitute({**escaped, **(trusted or {})})
        return self._layout.substitute(
            title=html.escape(page_title), style=self._style, content=content, script=self._script if script else ""
        )

    def _page(
        self, status: int, body: str, cookies: list[Cookie] | None = None, headers: dict[str, str] | None = None
    ) -> Response[str]:
        return Response(
            status_code=status,
            content_type=HTML,
            body=body,
            headers={**self.security_headers(), **(headers or {})},
            cookies=cookies,
        )

    def accept(self, token: str | None) -> Response[str]:
        """The page that POSTs the token: auto-submitted by the script, or by the visible button."""
        # The script replaces the first text by "Signing you in..." when it submits the form itself.
        status = "Select \u201cSign in\u201d to continue." if token else "No token provided."
        body = self._render(
            "Sign in",
            "accept",
            script=True,
            # Without a token in the query the form waits hidden for the script to find one in the fragment.
            trusted={"hidden": "" if token else " hidden"},
            status=status,
            token=token or "",
            auto_submit="true" if self.auto_submit else "false",
        )
        return self._page(200, body)

    def head(self) -> Response[str]:
        return self._page(200, "")

    def error(self, error: SignInLinksError) -> Response[str]:
        text = ERROR_TEXTS.get(error.code)
        if text is not None:
            title, message, hint = text.title, text.message, HINT
            if error.long_message != error.code.long_message:  # a more specific reason was given
                message = error.long_message
        else:
            title, message = error.message, error.long_message
            hint = "Please try again in a moment." if error.status >= 500 else HINT
        body = self._render(title, "error", title=title, message=message, hint=hint, code=error.code.wire_code)
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
        return self._page(error.status, body, headers=headers)

    def signed_in(self, user_id: str, cookies: list[Cookie]) -> Response[str]:
        return self._page(200, self._render("Signed in", "signed_in", user_id=user_id), cookies)

    def redirect(self, location: str, cookies: list[Cookie]) -> Response[str]:
        body = self._render("Signed in", "redirect", location=location, heading="Signed in")
        return self._page(303, body, cookies, {"Location": location})

    # --- Sessions: the "another user is signed in" page, sign-out (issue 9 item 7, issue 10) -----

    def confirm_switch(self, signed_in_user_id: str, link_user_id: str, token: str) -> Response[str]:
        """409: who is signed in here, who the link is for, and a button that posts the token again
        with ``confirm=switch_user``. No script: this form must never submit itself."""
        body = self._render(
            "Switch accounts?", "confirm", signed_in_user=signed_in_user_id, link_user=link_user_id, token=token
        )
        return self._page(409, body)

    def sign_out(self, redirect_url: str) -> Response[str]:
        """The GET page: a button that POSTs /sign-out (a GET never signs out)."""
        return self._page(200, self._render("Sign out", "sign_out", redirect_url=redirect_url))

    def signed_out(self, cookies: list[Cookie], redirect_url: str | None) -> Response[str]:
        if redirect_url:
            body = self._render("Signed out", "redirect", location=redirect_url, heading="Signed out")
            return self._page(303, body, cookies, {"Location": redirect_url})
        return self._page(200, self._render("Signed out", "signed_out"), cookies)
