"""What of a batch user's metadata an email may show (``first_name``, or any ``${metadata.key}`` of a
team's templates).

Metadata comes from whoever put the batch on the bus, not from this service, yet an email shows it
beside the service's own words: a ``first_name`` of "Your account is locked, visit
https://evil.example" would read as ours. So a value is shown only when it is short, one line of
plain text, and nothing a mail client would turn into a link or markup; otherwise it is not shown
at all (the template's fallback, or the greeting without a name, takes its place). Dropping beats
cutting: half a sentence is still someone else's words.

- :func:`display_text`: any metadata value. At most :data:`MAX_TEXT_LENGTH` characters after
  normalising (NFC, whitespace collapsed); no ``<`` or ``>``; nothing URL-like (a scheme such as
  ``https:`` or ``mailto:``, ``//``, ``www.``, an ``@``, or a dotted name such as ``evil.example``,
  fullwidth and ideographic dots included); no control or bidi-formatting characters (zero-width
  joiners stay: Persian and Indic names need them).
- :func:`display_name`: the reader's name in the greeting, stricter still: at most
  :data:`MAX_NAME_LENGTH` characters of letters, combining marks, spaces and the punctuation of
  names (apostrophes, hyphens, full stops, middle dots), no digits.

Pure and standard-library only.
"""

from __future__ import annotations

import re
import unicodedata

MAX_TEXT_LENGTH = 64
MAX_NAME_LENGTH = 40

_SPACE = re.compile(r"\s+")
_DOT = "[.\u3002\uff0e\uff61\u2024\ufe52]"  # full stop, ideographic, fullwidth, halfwidth, one-dot leader, small
_URL_LIKE = re.compile(
    rf"[^\W\d_][\w+.-]*:|//|\\\\|www{_DOT}|[@\uff20\ufe6b]|\w{_DOT}[^\W\d_]{{2}}",
    re.IGNORECASE,
)
_NAME_PUNCTUATION = frozenset("'\u2019-.\u00b7\u30fb\u2010 ")
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ and ZWJ: part of how some scripts spell names


def _normalised(value: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFC", value)).strip()


def _has_controls(text: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") and char not in _JOINERS for char in text)


def display_text(value: str) -> str:
    """``value`` as an email may show it, or "" when it must not be shown (see the module)."""
    text = _normalised(value)
    if len(text) > MAX_TEXT_LENGTH or "<" in text or ">" in text or _has_controls(text):
        return ""
    if _URL_LIKE.search(text):
        return ""
    return text


def display_name(value: object) -> str:
    """The reader's name for the greeting (``metadata.first_name``), or "" when there is none to show."""
    if not isinstance(value, str):
        return ""
    name = display_text(value)
    if len(name) > MAX_NAME_LENGTH:
        return ""
    for char in name:
        if char in _NAME_PUNCTUATION or char in _JOINERS:
            continue
        if unicodedata.category(char)[0] not in ("L", "M"):
            return ""
    return name
