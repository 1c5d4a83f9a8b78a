"""The catalogues: every language has every text of texts.py, with the same placeholders, and each
committed .mo is exactly its .po compiled (`make catalogues` rebuilds them)."""

from __future__ import annotations

import io
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from signin_links import i18n, texts

TRANSLATED = [tag for tag in i18n.LANGUAGES if tag != i18n.SOURCE_LANGUAGE]


def source_texts() -> set[str]:
    """What `make catalogues` extracts: every N_("...") of texts.py."""
    found = extract_from_file("python", texts.__file__, keywords={"N_": None})
    return {message for _, message, _, _ in found}


def read(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


def placeholders(message: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(message) if field is not None}


def test_texts_are_extracted_into_the_template() -> None:
    extracted = source_texts()
    assert extracted, "no N_() text found"
    assert extracted == {value for name, value in vars(texts).items() if name.isupper() and isinstance(value, str)}
    assert {message.id for message in read(i18n.LOCALE_DIR / "signin_links.pot") if message.id} == extracted


@pytest.mark.parametrize("tag", TRANSLATED)
def test_every_language_has_every_text_with_the_same_placeholders(tag: str) -> None:
    catalogue = read(i18n.catalogue_path(tag, ".po"))
    assert str(catalogue.locale).replace("_", "-") == tag
    messages = {message.id: message for message in catalogue if message.id}
    assert set(messages) == source_texts(), f"run `make catalogues`: {tag} is out of step with texts.py"
    for english, message in messages.items():
        assert isinstance(message.string, str)
        assert message.string.strip(), f"{tag}: {english!r} is not translated"
        assert not message.fuzzy, f"{tag}: {english!r} is fuzzy (check it, then clear the flag)"
        assert placeholders(message.string) == placeholders(english), (tag, english, message.string)


@pytest.mark.parametrize("tag", TRANSLATED)
def test_each_compiled_catalogue_is_its_po_compiled(tag: str) -> None:
    compiled = io.BytesIO()
    write_mo(compiled, read(i18n.catalogue_path(tag, ".po")))
    assert i18n.catalogue_path(tag).read_bytes() == compiled.getvalue(), f"run `make catalogues` ({tag})"


def test_every_language_shipped_has_a_catalogue_and_nothing_else_is_shipped() -> None:
    folders = {path.name.replace("_", "-") for path in i18n.LOCALE_DIR.iterdir() if path.is_dir()}
    assert folders == set(TRANSLATED)


@pytest.mark.parametrize("tag", i18n.LANGUAGES)
def test_every_text_formats_in_every_language(tag: str) -> None:
    lang = i18n.language(tag)
    for english in source_texts():
        values = {name: f"<{name}>" for name in placeholders(english)}
        rendered = lang.text(english, **values)
        assert all(value in rendered for value in values.values()), (tag, english, rendered)
        assert "{" not in rendered and "}" not in rendered, (tag, english, rendered)
