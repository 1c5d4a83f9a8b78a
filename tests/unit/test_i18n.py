"""Which language a reader gets: Accept-Language for the pages, metadata.locale for the emails."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from signin_links import i18n, texts
from signin_links.i18n import LANGUAGES, for_locale, language, negotiate
from tests.strategies import TRICKY_CHARS, tricky_text

NEGOTIATED = [
    # (Accept-Language, default, language)
    ("de", "en", "de"),
    ("de-DE,de;q=0.9,en;q=0.8", "en", "de"),
    ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "en", "fr"),
    ("en;q=0.5, ja", "en", "ja"),  # quality, not order
    ("ja;q=0.8, ar;q=0.8", "en", "ja"),  # a tie keeps the header's order
    ("pt-PT", "en", "pt-BR"),  # the only Portuguese shipped
    ("pt", "en", "pt-BR"),
    ("PT-br", "en", "pt-BR"),
    ("es-419", "en", "es"),
    ("ar-EG,ar;q=0.9", "en", "ar"),
    ("zh-CN, zh;q=0.9", "de", "de"),  # nothing shipped: the default
    ("zh-CN, zh;q=0.9, fr;q=0.1", "de", "fr"),
    ("*", "ja", "ja"),
    ("de;q=0, *", "en", "en"),
    ("en;q=0, *;q=0.5", "en", "en"),  # the default is what a page falls back to, refused or not
    ("de;q=0, de-AT", "en", "en"),  # German refused: a regional German does not bring it back
    ("de-AT;q=0, de;q=0.5", "en", "de"),  # only Austrian German refused
    ("de;q=0.000", "fr", "fr"),
    ("de;q=1.000", "fr", "de"),
    ("", "es", "es"),
    (None, "es", "es"),
    # Malformed ranges are skipped; a header of nothing else falls back.
    ("de;q=2", "fr", "fr"),
    ("de;q=abc, ja", "fr", "ja"),
    ("de;q=0.5;q=0.9", "fr", "fr"),
    ("de;level=1", "fr", "fr"),
    ("d\u00e9", "fr", "fr"),
    ("\uff44\uff45", "fr", "fr"),  # fullwidth "de"
    ("de-", "fr", "fr"),
    ("-de", "fr", "fr"),
    ("deutschland-de", "fr", "fr"),  # a primary subtag longer than 8 letters
    (";q=1", "fr", "fr"),
    (",,,", "fr", "fr"),
    ("de" + ", x" * 600, "fr", "fr"),  # oversized: the default
    ("x," * 40 + "de", "fr", "fr"),  # only the first 32 ranges are read
]


@pytest.mark.parametrize(("header", "default", "expected"), NEGOTIATED)
def test_the_page_language_follows_accept_language(header: str | None, default: str, expected: str) -> None:
    assert negotiate(header, default) == expected


def oracle(entries: list[tuple[str, float]], default: str) -> str:
    """The language RFC 9110 asks for, written apart from the implementation: the shipped
    language of the best range, not refused by a q=0 of its own language."""
    refused = {
        tag
        for tag in LANGUAGES
        for name, quality in entries
        if quality == 0 and name != "*" and (name.lower() == tag.lower() or name.lower() == tag.split("-")[0].lower())
    }
    best: tuple[float, str] | None = None
    for name, quality in entries:
        tag = default if name == "*" else i18n.supported(name)
        if tag is None or quality == 0 or tag in refused:
            continue
        if best is None or quality > best[0]:
            best = (quality, tag)
    return best[1] if best else default


RANGES = st.sampled_from(["de", "de-AT", "DE", "fr", "fr-CA", "es", "pt", "pt-BR", "pt-PT", "ja", "ar", "en", "en-GB"])
RANGES |= st.sampled_from(["zh", "zh-Hant-TW", "sv", "*", "x-klingon", "i-default"])
QUALITIES = st.sampled_from([1.0, 0.9, 0.8, 0.5, 0.5, 0.123, 0.001, 0.0])


@given(
    entries=st.lists(st.tuples(RANGES, QUALITIES), max_size=8),
    default=st.sampled_from(LANGUAGES),
    spaces=st.sampled_from(["", " ", "  "]),
)
def test_well_formed_headers_get_the_best_shipped_language(
    entries: list[tuple[str, float]], default: str, spaces: str
) -> None:
    header = f",{spaces}".join(name if quality == 1.0 else f"{name};{spaces}q={quality:g}" for name, quality in entries)
    assert negotiate(header, default) == oracle(entries, default), header


@given(
    header=st.text(max_size=200)
    | tricky_text
    | st.lists(st.text(st.sampled_from(TRICKY_CHARS + "abcdeqjr=;,*0123456789"), max_size=20), max_size=40).map(
        ",".join
    )
    | st.integers(min_value=0, max_value=5000).map(lambda n: "de," * n),
    default=st.sampled_from(LANGUAGES),
)
@example(header="\ud800", default="en")
@example(header="de;q=" + "9" * 5000, default="en")
def test_any_header_gives_a_shipped_language_and_never_raises(header: str, default: str) -> None:
    chosen = negotiate(header, default)
    assert chosen in LANGUAGES
    if not any(i18n.supported(part.split(";")[0].strip()) for part in header.split(",") if part.strip()):
        assert chosen == default


LOCALES = [
    ("de", "de"),
    ("de_DE", "de"),
    ("pt_BR", "pt-BR"),
    ("pt-pt", "pt-BR"),
    (" ja ", "ja"),
    ("AR", "ar"),
    ("fr-CA", "fr"),
    ("zh", "en"),
    ("", "en"),
    ("*", "en"),
    ("de;q=1", "en"),
    ("de,fr", "en"),
    ("x" * 100, "en"),
    (None, "en"),
    (7, "en"),
    (["de"], "en"),
    ({"language": "de"}, "en"),
    (True, "en"),
]


@pytest.mark.parametrize(("locale", "expected"), LOCALES)
def test_the_email_language_follows_the_user_s_locale(locale: object, expected: str) -> None:
    assert for_locale(locale, "en") == expected


@given(
    value=st.text(max_size=40)
    | tricky_text
    | st.integers()
    | st.floats()
    | st.none()
    | st.booleans()
    | st.lists(st.text(max_size=3), max_size=2),
    default=st.sampled_from(LANGUAGES),
)
def test_any_metadata_locale_gives_a_shipped_language(value: object, default: str) -> None:
    chosen = for_locale(value, default)
    assert chosen in LANGUAGES
    if not isinstance(value, str):
        assert chosen == default


@pytest.mark.parametrize("tag", LANGUAGES)
def test_each_language_reads_its_catalogue_with_its_direction(tag: str) -> None:
    lang = language(tag)
    assert lang.tag == tag
    assert lang.direction == ("rtl" if tag == "ar" else "ltr")
    translated = lang.text(texts.SIGNED_IN_AS, user_id="user_1")
    assert "user_1" in translated
    if tag == "en":
        assert translated == "Signed in as user_1"
    else:  # a catalogue was read: the text is not the English one
        assert translated != "Signed in as user_1"


def test_a_language_is_read_once_and_tags_are_case_insensitive() -> None:
    assert language("PT-br") is language("pt-BR")
