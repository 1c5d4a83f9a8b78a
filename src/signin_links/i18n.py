"""The languages of the pages and emails: which one a reader gets, and its catalogue.

Seven languages ship (:data:`LANGUAGES`). The words are English in the code (``texts.py``) and
translated by one gettext catalogue per language under ``locale/`` (``<ll_CC>/LC_MESSAGES/
signin_links.po``, compiled to ``.mo`` and read with the standard library's :mod:`gettext`);
``make catalogues`` extracts, merges and compiles them, and ``tests/unit/test_catalogues.py``
checks that every language has every text with the same placeholders and that each ``.mo`` is
its ``.po`` compiled.

Who gets which language:

- a page: the first shipped language the browser's ``Accept-Language`` asks for, by quality
  (:func:`negotiate`), else ``DefaultLanguage``;
- an email: the batch user's ``metadata.locale`` (:func:`for_locale`), else ``DefaultLanguage``.

A region or script the catalogues do not have falls back to the language (``de-AT`` and ``de``
read German, ``pt-PT`` and ``pt`` Brazilian Portuguese, ``en-GB`` English); anything unknown or
malformed falls back to the default. Both never raise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gettext

DOMAIN = "signin_links"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

# BCP 47 tags, as <html lang> and Content-Language carry them; English is the source language.
LANGUAGES = ("en", "de", "fr", "es", "pt-BR", "ja", "ar")
SOURCE_LANGUAGE = "en"
RIGHT_TO_LEFT = frozenset({"ar"})

# What a request may make this module read: browsers send a few dozen bytes.
MAX_HEADER_LENGTH = 1024
MAX_RANGES = 32

_BY_LOWER = {tag.lower(): tag for tag in LANGUAGES}
_BY_PRIMARY = {tag.split("-")[0].lower(): tag for tag in LANGUAGES}
# RFC 9110 section 12.5.4 (Accept-Language) and RFC 4647 section 2.1 (basic language ranges).
_RANGE = re.compile(r"(?a:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)")
_WEIGHT = re.compile(r"(?a:q=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?))", re.IGNORECASE)


def supported(tag: str) -> str | None:
    """The shipped language a BCP 47 tag (any case, ``_`` or ``-``) reads, or None: the tag itself,
    else its primary language (``de-AT`` -> ``de``, ``pt`` -> ``pt-BR``)."""
    lowered = tag.replace("_", "-").lower()
    return _BY_LOWER.get(lowered) or _BY_PRIMARY.get(lowered.split("-")[0])


def negotiate(header: str | None, default: str) -> str:
    """The language of a page for a request's ``Accept-Language``: the shipped language of the
    highest-quality range that names one (ties: the header's order), ``*`` meaning ``default``;
    ranges with ``q=0`` are refused. A malformed range is skipped; a header with nothing usable,
    an absent or an oversized one gives ``default``."""
    if not header or len(header) > MAX_HEADER_LENGTH:
        return default
    wanted: list[tuple[float, int, str]] = []
    refused: set[str] = set()
    for position, item in enumerate(header.split(",")[:MAX_RANGES]):
        language_range, *parameters = (part.strip() for part in item.split(";"))
        if not _RANGE.fullmatch(language_range) or len(parameters) > 1:
            continue
        quality = 1.0
        if parameters:
            weight = _WEIGHT.fullmatch(parameters[0].replace(" ", ""))
            if weight is None:
                continue
            quality = float(weight.group(1))
        tag = default if language_range == "*" else supported(language_range)
        if tag is None:
            continue
        if quality == 0:
            # "de;q=0" or "pt;q=0" refuses German or Portuguese; "de-AT;q=0" only Austrian German,
            # which is not shipped apart; "*;q=0" cannot refuse the language every page falls back to.
            if language_range != "*" and ("-" not in language_range or language_range.lower() == tag.lower()):
                refused.add(tag)
            continue
        wanted.append((-quality, position, tag))
    for _, _, tag in sorted(wanted):
        if tag not in refused:
            return tag
    return default


def for_locale(value: object, default: str) -> str:
    """The language of an email for a batch user's ``metadata.locale`` (``"de"``, ``"pt_BR"``,
    ``"fr-CA"``...): the shipped language it names, else ``default`` (not a string, empty,
    malformed, or a language not shipped)."""
    if not isinstance(value, str) or len(value) > 35:  # RFC 5646's longest useful tag
        return default
    tag = value.strip().replace("_", "-")
    if not _RANGE.fullmatch(tag) or tag == "*":
        return default
    return supported(tag) or default


@dataclass(frozen=True)
class Language:
    """One shipped language: its tag, its direction and its catalogue."""

    tag: str
    translations: gettext.NullTranslations

    @property
    def direction(self) -> str:
        """``rtl`` or ``ltr``: the ``dir`` of the page or email."""
        return "rtl" if self.tag in RIGHT_TO_LEFT else "ltr"

    def text(self, message: str, **values: str) -> str:
        """``message`` (an English text of ``texts.py``) in this language, its ``{placeholders}``
        filled with ``values`` (plain text: the caller escapes for HTML)."""
        translated = self.translations.gettext(message)
        return translated.format_map(values) if values else translated


def catalogue_path(tag: str, suffix: str = ".mo") -> Path:
    """Where a language's catalogue lives (gettext names the folder ``pt_BR``, not ``pt-BR``)."""
    return LOCALE_DIR / tag.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}{suffix}"


def language(tag: str) -> Language:
    """The :class:`Language` of a shipped tag (any case), its catalogue read once per execution
    environment. An unknown tag is a bug (tags come from :func:`negotiate`, :func:`for_locale` or
    the settings): KeyError."""
    return _load(_BY_LOWER[tag.lower()])


@cache
def _load(tag: str) -> Language:
    import gettext  # here, not at the top: the mint parses DEFAULT_LANGUAGE but never translates

    if tag == SOURCE_LANGUAGE:
        return Language(tag, gettext.NullTranslations())
    with catalogue_path(tag).open("rb") as catalogue:
        return Language(tag, gettext.GNUTranslations(catalogue))
