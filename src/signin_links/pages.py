"""The accept function's pages: every state a person can meet, in their language, with the brand.

Rendered from ``templates/``: a layout (``page.html``) around one fragment per state, all
``string.Template`` files, read once at init from ``PAGE_TEMPLATE_DIR`` (a team's own files, each
replacing the built-in one of the same name) or the function's own folder. Every value is
HTML-escaped; markup comes only from the template files and this module's fixed snippets. The
words come from ``texts.py`` in the reader's language (``i18n.py``), so a team's own templates stay
translated by using the same placeholders (:data:`PLACEHOLDERS`; a placeholder a fragment may not
use fails the init, named). The page's one script and one stylesheet are inlined and allowed by
SHA-256 hashes computed here from the files actually loaded (the brand colour included), so no
other inline code can run, whoever wrote the templates. Every response of the accept function
carries :meth:`Pages.security_headers` (see :meth:`Pages.secure`).
"""

from __future__ import annotations

import base64
import hashlib
import html
from pathlib import Path
from string import Template
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.shared.cookies import Cookie

from signin_links import texts
from signin_links.branding import Brand
from signin_links.config import ConfigError
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.i18n import Language
from signin_links.models import RENEWAL_ALREADY
from signin_links.renewal import APPLICATION

HTML = "text/html; charset=utf-8"

# Each template file's placeholders; those in TRUSTED hold markup built here, the others are escaped.
PLACEHOLDERS = {
    "page": {"lang", "dir", "title", "style", "brand", "content", "script", "app_name", "logo_url", "brand_color"},
    "accept": {"heading", "status", "token", "csrf_token", "auto_submit", "hidden", "button", "working"},
    "confirm_sign_in": {"heading", "who", "warning", "token", "csrf_token", "hidden", "button", "working"},
    "error": {"heading", "message", "hint", "code", "code_label", "support", "renewal"},
    "renew_form": {"token", "csrf_token", "button"},
    "renewed": {"heading", "message"},
    "signed_in": {"heading", "signed_in_as", "user_id"},
    "redirect": {"heading", "location", "continue_label"},
    "confirm": {"heading", "who", "warning", "token", "csrf_token", "button", "code_label"}
    | {"signed_in_user", "link_user"},
    "sign_out": {"heading", "question", "redirect_url", "csrf_token", "button"},
    "signed_out": {"heading", "status"},
}
TRUSTED = frozenset({"style", "brand", "content", "script", "hidden", "support", "who", "signed_in_as", "renewal"})
SCRIPT, STYLE = "accept.js", "accept.css"
SEPARATOR = " \u00b7 "  # between two support links

# The texts of the failures a person clicking a link can meet: (heading, message, hint).
DEAD_LINK_TEXTS = {
    ErrorCode.TICKET_INVALID: (texts.LINK_INVALID, texts.LINK_INVALID_WHY),
    ErrorCode.TICKET_EXPIRED: (texts.LINK_EXPIRED, texts.LINK_EXPIRED_WHY),
    ErrorCode.SIGN_IN_TOKEN_ALREADY_USED: (texts.LINK_USED, texts.LINK_USED_WHY),
    ErrorCode.SIGN_IN_TOKEN_REVOKED: (texts.LINK_REVOKED, texts.LINK_REVOKED_WHY),
}
OTHER_ERROR_TEXTS = {
    ErrorCode.ORIGIN_INVALID: (texts.REQUEST_REFUSED, texts.REQUEST_REFUSED_WHY),
    ErrorCode.ROUTE_NOT_FOUND: (texts.PAGE_NOT_FOUND, texts.PAGE_NOT_FOUND_WHY),
    ErrorCode.RESOURCE_NOT_FOUND: (texts.PAGE_NOT_FOUND, texts.PAGE_NOT_FOUND_WHY),
}
# A rejection's own long message that is one of the texts: shown (translated) instead of the default.
SPECIFIC_MESSAGES = frozenset({texts.LINK_REDIRECT_NOT_ALLOWED_WHY})


def sha256_source(text: str) -> str:
    """The CSP source expression allowing exactly this inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


TEMPLATE_FILES = (*(f"{fragment}.html" for fragment in PLACEHOLDERS), SCRIPT, STYLE)


def load_templates(built_in: Path, override: Path | None = None) -> dict[str, str]:
    """Every template file, from ``override`` (``PAGE_TEMPLATE_DIR``) where it has one, else from
    ``built_in``. ConfigError names an override that is not a folder of templates, a file that
    cannot be read, or a placeholder its fragment may not use."""
    directories = [built_in]
    if override is not None:
        if not override.is_dir() or not any((override / name).is_file() for name in TEMPLATE_FILES):
            raise ConfigError(
                f"PAGE_TEMPLATE_DIR: {str(override)[:200]!r} is not a folder holding any of {list(TEMPLATE_FILES)}"
            )
        directories.insert(0, override)
    loaded: dict[str, str] = {}
    for name in TEMPLATE_FILES:
        path = next((directory / name for directory in directories if (directory / name).is_file()), None)
        if path is None:
            raise ConfigError(f"page template {name} is in none of {[str(d) for d in directories]}")
        try:
            loaded[name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"page template {path} cannot be read ({type(exc).__name__})") from None
        fragment = name.removesuffix(".html")
        if fragment in PLACEHOLDERS:
            template = Template(loaded[name])
            if not template.is_valid():
                raise ConfigError(f"page template {path}: a lone $ (write $$ for a dollar sign)")
            unknown = set(template.get_identifiers()) - PLACEHOLDERS[fragment]
            if unknown:
                raise ConfigError(
                    f"page template {path}: unknown placeholder(s) {sorted(unknown)} "
                    f"(known: {sorted(PLACEHOLDERS[fragment])})"
                )
    return loaded


class Pages:
    """Renders the accept page, its results and its error pages as Powertools responses."""

    def __init__(
        self,
        templates: Path,
        *,
        auto_submit: bool,
        redirect_origins: tuple[str, ...] = (),
        brand: Brand | None = None,
        override: Path | None = None,
    ) -> None:
        files = load_templates(templates, override)
        self._fragments = {name: Template(files[f"{name}.html"]) for name in PLACEHOLDERS}
        self.brand = brand or Brand()
        script = files[SCRIPT]
        # The brand colour is a custom property the stylesheet uses (var(--brand)): part of the hashed text.
        style = f":root{{--brand:{self.brand.color}}}\n{files[STYLE]}"
        self._script = f"<script>{script}</script>"
        self._style = style
        self.auto_submit = auto_submit
        # A form's target and the redirects that follow its submission are both checked against
        # form-action (CSP 3), so the allowed redirect origins must be listed next to 'self'.
        form_action = " ".join(["'self'", *redirect_origins])
        images = f"img-src {self.brand.logo_origin}; " if self.brand.logo_url else ""
        self.csp = (
            f"default-src 'none'; script-src {sha256_source(script)}; style-src {sha256_source(style)}; "
            f"{images}form-action {form_action}; base-uri 'none'; frame-ancestors 'none'"
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

    # -- rendering ----------------------------------------------------------------------------------

    def _render(
        self,
        lang: Language,
        title: str,
        fragment: str,
        *,
        script: bool = False,
        trusted: dict[str, str] | None = None,
        **values: str,
    ) -> str:
        """``values`` are escaped; ``trusted`` holds markup built by this module only."""
        escaped = {name: html.escape(value, quote=True) for name, value in values.items()}
        content = self._fragments[fragment].substitute({**escaped, **(trusted or {})})
        brand = self.brand
        if brand.app_name:
            title = lang.text(texts.TITLE_WITH_APP, title=title, app_name=brand.app_name)
        return self._fragments["page"].substitute(
            lang=lang.tag,
            dir=lang.direction,
            title=html.escape(title),
            style=self._style,
            brand=self._brand_header(lang),
            content=content,
            script=self._script if script else "",
            app_name=html.escape(brand.app_name),
            logo_url=html.escape(brand.logo_url),
            brand_color=brand.color,
        )

    def _brand_header(self, lang: Language) -> str:
        brand = self.brand
        if brand.logo_url:
            alt = html.escape(brand.app_name or lang.text(texts.LOGO))
            return f'<header class="brand"><img src="{html.escape(brand.logo_url)}" alt="{alt}"></header>'
        if brand.app_name:
            return f'<header class="brand"><p class="app-name">{html.escape(brand.app_name)}</p></header>'
        return ""

    def _support(self, lang: Language) -> str:
        """The "Need help?" line of the error pages (SupportUrl, SupportEmail), or nothing."""
        brand = self.brand
        links = []
        if brand.support_url:
            label = html.escape(lang.text(texts.CONTACT_SUPPORT))
            links.append(f'<a href="{html.escape(brand.support_url)}">{label}</a>')
        if brand.support_email:
            email = html.escape(brand.support_email)
            links.append(f'<a href="mailto:{email}">{email}</a>')
        if not links:
            return ""
        return f'<p class="support">{rich(lang, texts.NEED_HELP, support=SEPARATOR.join(links))}</p>'

    def _page(
        self,
        lang: Language,
        status: int,
        body: str,
        cookies: list[Cookie] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response[str]:
        return Response(
            status_code=status,
            content_type=HTML,
            body=body,
            headers={
                **self.security_headers(),
                "Content-Language": lang.tag,
                "Vary": "Accept-Language",
                **(headers or {}),
            },
            cookies=cookies,
        )

    # -- the states -----------------------------------------------------------------------------------

    def accept(
        self,
        token: str | None,
        lang: Language,
        *,
        csrf_token: str = "",
        cookies: list[Cookie] | None = None,
        confirm_as: str | None = None,
    ) -> Response[str]:
        """The page that POSTs the token: auto-submitted by the script, or by the visible button.

        ``confirm_as`` (``AcceptConfirmation``): the page names the user the link signs in as (the
        ticket's ``uid``; "" for a ``#token=`` link, which the script fills in) and waits for the
        click. ``csrf_token`` goes in the form; ``cookies`` carry its ``__Host-csrf`` nonce."""
        button = lang.text(texts.SIGN_IN)
        # Without a token in the query the form waits hidden for the script to find one in the fragment.
        hidden = "" if token else " hidden"
        if confirm_as is not None:
            who = rich(lang, texts.CONFIRM_SIGN_IN_WHO, link_user=account(confirm_as, "link-user"))
            body = self._render(
                lang,
                button,
                "confirm_sign_in",
                script=True,
                trusted={"hidden": hidden, "who": who},
                heading=button,
                warning=lang.text(texts.CONFIRM_SIGN_IN_WARNING),
                token=token or "",
                csrf_token=csrf_token,
                button=button,
                working=lang.text(texts.SIGNING_IN),
            )
            return self._page(lang, 200, body, cookies)
        # The script shows ``working`` ("Signing you in...") when it submits the form itself.
        status = lang.text(texts.SELECT_TO_CONTINUE, button=button) if token else lang.text(texts.NO_TOKEN)
        body = self._render(
            lang,
            button,
            "accept",
            script=True,
            trusted={"hidden": hidden},
            heading=button,
            status=status,
            token=token or "",
            csrf_token=csrf_token,
            auto_submit="true" if self.auto_submit else "false",
            button=button,
            working=lang.text(texts.SIGNING_IN),
        )
        return self._page(lang, 200, body, cookies)

    def head(self) -> Response[str]:
        return Response(status_code=200, content_type=HTML, body="", headers=self.security_headers())

    def error(
        self,
        error: SignInLinksError,
        lang: Language,
        *,
        renew_token: str | None = None,
        csrf_token: str = "",
        cookies: list[Cookie] | None = None,
    ) -> Response[str]:
        """The page of a failure; with ``renew_token``, the "Email me a new link" form (renewal.py),
        with its ``csrf_token`` (and ``cookies``: the ``__Host-csrf`` nonce it is bound to)."""
        if error.code in DEAD_LINK_TEXTS:
            heading, message = DEAD_LINK_TEXTS[error.code]
            if error.long_message in SPECIFIC_MESSAGES:  # a more specific reason was given
                message = error.long_message
            hint = texts.ASK_FOR_NEW_LINK
        elif error.status >= 500:
            heading, message, hint = texts.UNAVAILABLE, texts.UNAVAILABLE_WHY, texts.TRY_AGAIN
        else:
            heading, message = OTHER_ERROR_TEXTS.get(error.code, (texts.REQUEST_INVALID, texts.REQUEST_INVALID_WHY))
            hint = texts.ASK_FOR_NEW_LINK
        heading = lang.text(heading)
        body = self._render(
            lang,
            heading,
            "error",
            trusted={"support": self._support(lang), "renewal": self._renew_form(renew_token, csrf_token, lang)},
            heading=heading,
            message=lang.text(message),
            hint=lang.text(hint),
            code=error.code.wire_code,
            code_label=lang.text(texts.ERROR_CODE),
        )
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
        return self._page(lang, error.status, body, cookies, headers=headers)

    def _renew_form(self, token: str | None, csrf_token: str, lang: Language) -> str:
        if token is None:
            return ""
        return self._fragments["renew_form"].substitute(
            token=html.escape(token, quote=True),
            csrf_token=html.escape(csrf_token, quote=True),
            button=html.escape(lang.text(texts.EMAIL_NEW_LINK)),
        )

    def renewal(self, outcome: str, delivery: str, lang: Language) -> Response[str]:
        """The answer to "Email me a new link": the same for a renewal recorded now and for a token
        that could not be renewed (forged, never emailed...), so it tells nobody which it was; a
        second press of a renewed link says one was sent."""
        if delivery == APPLICATION:
            app_name = self.brand.app_name or lang.text(texts.THE_SITE)
            heading = lang.text(texts.NEW_LINK_REQUESTED)
            message = lang.text(texts.NEW_LINK_REQUESTED_WHY, app_name=app_name)
        elif outcome == RENEWAL_ALREADY:
            heading, message = lang.text(texts.NEW_LINK_SENT), lang.text(texts.NEW_LINK_SENT_WHY)
        else:
            heading, message = lang.text(texts.NEW_LINK_SENDING), lang.text(texts.NEW_LINK_SENDING_WHY)
        return self._page(lang, 200, self._render(lang, heading, "renewed", heading=heading, message=message))

    def signed_in(self, user_id: str, cookies: list[Cookie], lang: Language) -> Response[str]:
        heading = lang.text(texts.SIGNED_IN)
        body = self._render(
            lang,
            heading,
            "signed_in",
            trusted={"signed_in_as": rich(lang, texts.SIGNED_IN_AS, user_id=account(user_id, "user-id"))},
            heading=heading,
            user_id=user_id,
        )
        return self._page(lang, 200, body, cookies)

    def redirect(self, location: str, cookies: list[Cookie], lang: Language) -> Response[str]:
        return self._redirect(lang.text(texts.SIGNED_IN), location, cookies, lang)

    def _redirect(self, heading: str, location: str, cookies: list[Cookie], lang: Language) -> Response[str]:
        body = self._render(
            lang, heading, "redirect", heading=heading, location=location, continue_label=lang.text(texts.CONTINUE)
        )
        return self._page(lang, 303, body, cookies, {"Location": location})

    # --- Sessions: the "another user is signed in" page, sign-out ------------------------------------

    def confirm_switch(
        self,
        signed_in_user_id: str,
        link_user_id: str,
        token: str,
        lang: Language,
        *,
        csrf_token: str = "",
        cookies: list[Cookie] | None = None,
    ) -> Response[str]:
        """409: who is signed in here, who the link is for, and a button that posts the token again
        with ``confirm=switch_user``. No script: this form must never submit itself."""
        heading = lang.text(texts.SWITCH_ACCOUNTS)
        signed_in, link = account(signed_in_user_id, "signed-in-user"), account(link_user_id, "link-user")
        body = self._render(
            lang,
            heading,
            "confirm",
            trusted={"who": rich(lang, texts.SWITCH_WHO, signed_in_user=signed_in, link_user=link)},
            heading=heading,
            warning=lang.text(texts.SWITCH_WARNING, signed_in_user=signed_in_user_id),
            token=token,
            csrf_token=csrf_token,
            button=lang.text(texts.SIGN_IN_AS, link_user=link_user_id),
            code_label=lang.text(texts.ERROR_CODE),
            signed_in_user=signed_in_user_id,
            link_user=link_user_id,
        )
        return self._page(lang, 409, body, cookies)

    def sign_out(
        self, redirect_url: str, lang: Language, *, csrf_token: str = "", cookies: list[Cookie] | None = None
    ) -> Response[str]:
        """The GET page: a button that POSTs /sign-out (a GET never signs out)."""
        heading = lang.text(texts.SIGN_OUT)
        body = self._render(
            lang,
            heading,
            "sign_out",
            heading=heading,
            question=lang.text(texts.SIGN_OUT_QUESTION),
            redirect_url=redirect_url,
            csrf_token=csrf_token,
            button=heading,
        )
        return self._page(lang, 200, body, cookies)

    def signed_out(self, cookies: list[Cookie], redirect_url: str | None, lang: Language) -> Response[str]:
        heading = lang.text(texts.SIGNED_OUT)
        if redirect_url:
            return self._redirect(heading, redirect_url, cookies, lang)
        body = self._render(lang, heading, "signed_out", heading=heading, status=lang.text(texts.SIGNED_OUT_STATUS))
        return self._page(lang, 200, body, cookies)


def account(user_id: str, element_id: str) -> str:
    """An account id in a sentence: bold, and isolated (``dir="auto"``) so that an id in Latin
    letters keeps its order inside a right-to-left sentence."""
    return f'<strong id="{element_id}" dir="auto">{html.escape(user_id)}</strong>'


def rich(lang: Language, message: str, **markup: str) -> str:
    """``message`` translated and escaped, its placeholders filled with ``markup`` (built by the
    caller from escaped values)."""
    return html.escape(lang.text(message)).format_map(markup)
