"""The brand on the pages and emails: the application's name, its colour, its logo and where to get
help (template parameters ``AppName``, ``BrandColor``, ``LogoUrl``, ``SupportUrl``, ``SupportEmail``).

Pure: ``config.py`` parses each value here once, and refuses what would make a page unreadable or
unsafe (:class:`BrandError`, which it reports naming the variable): a colour whose contrast with
white text is below WCAG 2's AA level for normal text (4.5:1), a logo or support page that is not
an https URL, a name with markup or control characters.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from signin_links.redirects import UrlError, parse

DEFAULT_COLOR = "#2563eb"  # 5.17:1 against white
MIN_CONTRAST = 4.5  # WCAG 2.x success criterion 1.4.3 (AA), normal text: the buttons' white labels
MAX_APP_NAME_LENGTH = 64
MAX_EMAIL_LENGTH = 254

_HEX_COLOR = re.compile(r"(?a:#[0-9A-Fa-f]{6})")
_EMAIL = re.compile(r"(?a:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


class BrandError(ValueError):
    """A brand value that cannot be used; the message says why and what is allowed."""


@dataclass(frozen=True)
class Brand:
    """What a page or email shows of the application (every field checked by :func:`brand`)."""

    app_name: str = ""
    color: str = DEFAULT_COLOR  # lower-case #rrggbb
    logo_url: str = ""  # https, canonical ASCII
    support_url: str = ""  # https, canonical ASCII
    support_email: str = ""

    @property
    def logo_origin(self) -> str:
        """The origin the logo loads from (the pages' ``img-src``), or "" without a logo."""
        return parse(self.logo_url).origin if self.logo_url else ""


def _channel(value: int) -> float:
    """An sRGB channel (0-255) as linear light (WCAG 2's relative luminance)."""
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def contrast_with_white(color: str) -> float:
    """WCAG 2's contrast ratio of white against ``#rrggbb`` (1 to 21)."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * _channel(red) + 0.7152 * _channel(green) + 0.0722 * _channel(blue)
    return 1.05 / (luminance + 0.05)


def color(value: str) -> str:
    """``value`` as a lower-case ``#rrggbb`` that white text can be read on (AA), or BrandError."""
    if not _HEX_COLOR.fullmatch(value):
        raise BrandError(f"{value[:40]!r} is not a colour of the form #rrggbb (such as {DEFAULT_COLOR})")
    ratio = contrast_with_white(value)
    if ratio < MIN_CONTRAST:
        raise BrandError(
            f"{value} has a contrast of {ratio:.2f}:1 with white; WCAG AA needs at least {MIN_CONTRAST}:1 "
            "for the buttons' white text (choose a darker shade)"
        )
    return value.lower()


def https_url(value: str) -> str:
    """``value`` as a canonical ASCII https URL (``redirects.parse``), or BrandError."""
    try:
        parts = parse(value)
    except UrlError as exc:
        raise BrandError(f"{value[:80]!r} is not a URL ({exc.reason})") from None
    if not parts.url.startswith("https://"):
        raise BrandError(f"{value[:80]!r} is not an https URL")
    return parts.url


def app_name(value: str) -> str:
    """A display name: at most 64 characters, no markup (``<``, ``>``) and no control or
    formatting characters (bidi overrides included), else BrandError."""
    name = unicodedata.normalize("NFC", value.strip())
    if len(name) > MAX_APP_NAME_LENGTH:
        raise BrandError(f"is {len(name)} characters long; at most {MAX_APP_NAME_LENGTH} are allowed")
    if any(char in "<>" or unicodedata.category(char) in ("Cc", "Cf") for char in name):
        raise BrandError("must not contain <, > or control or formatting characters")
    return name


def email_address(value: str) -> str:
    """A plain ``local@domain`` address (shown as a mailto: link), or BrandError."""
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(value):
        raise BrandError(f"{value[:80]!r} is not an email address such as help@example.com")
    return value
