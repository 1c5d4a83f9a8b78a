"""What of a batch user's metadata an email may show: short plain text, never a link or markup."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from signin_links.display import MAX_NAME_LENGTH, MAX_TEXT_LENGTH, display_name, display_text
from tests.strategies import TRICKY_CHARS, tricky_text

SHOWN = [
    ("Ada", "Ada"),
    ("  Ada   Lovelace ", "Ada Lovelace"),
    ("Jean-Luc", "Jean-Luc"),
    ("O\u2019Brien", "O\u2019Brien"),
    ("J. R. R.", "J. R. R."),
    ("Zo\u0065\u0308", "Zo\u00eb"),  # NFC
    ("\u0645\u062d\u0645\u062f", "\u0645\u062d\u0645\u062f"),  # Arabic
    ("\u5c71\u7530\u30fb\u592a\u90ce", "\u5c71\u7530\u30fb\u592a\u90ce"),  # Japanese, with a katakana middle dot
    ("\u0645\u0647\u200c\u0633\u0627", "\u0645\u0647\u200c\u0633\u0627"),  # Persian, with a ZWNJ
    ("Ada\nLovelace", "Ada Lovelace"),
]
NOT_SHOWN = [
    "Your account is locked, visit https://evil.example",
    "visit evil.example now",
    "evil\u3002example",  # an ideographic full stop
    "evil\uff0eexample",
    "www.evil.test",
    "mailto:eve",
    "javascript:alert(1)",
    "//evil.example",
    "eve@evil.example",
    "eve\uff20evil",
    "<b>Ada</b>",
    "Ada >",
    "Ada\u202eecilA",  # a bidi override
    "Ada\u2066x\u2069",
    "Ada\x00",
    "Ada\ud800",
    "A" * (MAX_TEXT_LENGTH + 1),
]


@pytest.mark.parametrize(("value", "shown"), SHOWN)
def test_a_plain_name_is_shown(value: str, shown: str) -> None:
    assert display_text(value) == shown
    assert display_name(value) == shown


@pytest.mark.parametrize("value", NOT_SHOWN)
def test_links_markup_controls_and_long_text_are_not_shown(value: str) -> None:
    assert display_text(value) == ""
    assert display_name(value) == ""


@pytest.mark.parametrize(
    "value", ["Ada 2", "Plan: gold", "R2-D2", "Ada!", "x" * (MAX_NAME_LENGTH + 1), 42, None, ["Ada"]]
)
def test_a_greeting_shows_only_what_reads_as_a_name(value: object) -> None:
    assert display_name(value) == ""


def test_other_fields_may_hold_digits_and_ampersands() -> None:
    assert display_text("Plan 2 & more") == "Plan 2 & more"
    assert display_text("Version 3.5") == "Version 3.5"


URLISH = st.sampled_from(["https://evil.example", "evil.example", "www.x.y", "a@b", "<i>", "x\u202ey", "ftp:x"])


@given(
    before=st.text(max_size=30) | tricky_text,
    payload=URLISH,
    after=st.text(max_size=30) | tricky_text,
)
@example(before="Hi ", payload="https://evil.example", after="")
def test_no_link_or_markup_ever_survives_whatever_surrounds_it(before: str, payload: str, after: str) -> None:
    assert display_text(before + payload + after) == ""


@given(value=st.text(max_size=120) | tricky_text | st.text(st.sampled_from(TRICKY_CHARS + "aA1 .:/@<"), max_size=80))
def test_what_is_shown_is_short_one_line_and_plain(value: str) -> None:
    shown = display_text(value)
    assert len(shown) <= MAX_TEXT_LENGTH
    assert shown == shown.strip()
    assert not any(char in shown for char in "<>\n\r\t\x00@")
    assert "//" not in shown and "://" not in shown
    shown.encode("utf-8")  # no lone surrogate
    name = display_name(value)
    assert len(name) <= MAX_NAME_LENGTH
    assert not any(char.isdigit() for char in name)
    assert name == "" or name == shown
