"""Delivery by email, pure parts: the recipient, the templates, the event's shape."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from signin_links.config import ConfigError
from signin_links.link_email import (
    INVALID_ADDRESS,
    NO_ADDRESS,
    EmailTemplates,
    IgnoredEvent,
    MalformedEvent,
    MintedLink,
    PermanentFailure,
    parse_minted,
    recipient,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATES = ROOT / "functions" / "send_link_email" / "templates"
BASE = "https://links.example.com"
URL = f"{BASE}/accept-token?token=aaa.bbb.ccc"


def link(**changes: object) -> MintedLink:
    fields: dict[str, object] = {
        "token_id": "sit_0000000000000000000001",
        "user_id": "user_1",
        "url": URL,
        "token": "aaa.bbb.ccc",
        "expires_at_ms": 1_717_837_200_000,
        "batch_id": "wave-1",
        "metadata": {"first_name": "Ada", "email": "ada@example.com"},
    }
    fields.update(changes)
    return MintedLink(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  ada@Example.COM ", "ada@example.com"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
        ("ada@bücher.example", "ada@xn--bcher-kva.example"),
        ("ada@\uff45xample.com", "ada@example.com"),  # a fullwidth e maps to ASCII (IDNA)
    ],
)
def test_an_address_is_taken_as_ses_takes_it(given: str, expected: str) -> None:
    assert recipient({"email": given}) == expected


@pytest.mark.parametrize("value", [None, ""])
def test_no_address(value: object) -> None:
    with pytest.raises(PermanentFailure) as raised:
        recipient({"email": value} if value is not None else {})
    assert raised.value.reason == NO_ADDRESS


@pytest.mark.parametrize(
    "value",
    [
        42,
        ["ada@example.com"],
        {"address": "ada@example.com"},
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "ada@@example.com",
        "a@b@example.com",
        "ada@example.com, eve@example.com",
        "Ada <ada@example.com>",
        "ada@example.com\r\nBcc: eve@example.com",
        "adä@example.com",  # SES takes no non-ASCII local part
        "ada@exa mple.com",
        "ada@-example.com",
        "ada@example..com",
        "ada@192.168.0.1",
        ".ada@example.com",
        "ada.@example.com",
        "a" * 65 + "@example.com",
        "ada@" + "a" * 250 + ".com",
        "ada\ud800@example.com",
        "ada\uff20example.com",  # a fullwidth at sign
    ],
)
def test_what_is_not_one_address_ses_can_send_to(value: object) -> None:
    with pytest.raises(PermanentFailure) as raised:
        recipient({"email": value})
    assert raised.value.reason == INVALID_ADDRESS


def test_the_default_templates_have_the_link_once_as_a_button_and_once_as_text() -> None:
    rendered = EmailTemplates.load(DEFAULT_TEMPLATES).render(link())
    assert rendered.subject == "Your sign-in link"
    assert rendered.html.count(f'href="{URL}"') == 1
    assert rendered.html.count(URL) == 2  # the button's href and the text
    assert rendered.text.count(URL) == 1
    assert "Hello Ada," in rendered.text
    assert "Hello Ada," in rendered.html
    assert "2024-06-08 09:00 UTC" in rendered.text


def test_without_a_name_the_greeting_has_none() -> None:
    rendered = EmailTemplates.load(DEFAULT_TEMPLATES).render(link(metadata={}))
    assert rendered.text.startswith("Hello,\n")
    assert '<p style="margin:0 0 16px">Hello,</p>' in rendered.html


def test_a_missing_metadata_field_takes_its_fallback(tmp_path: Path) -> None:
    templates = EmailTemplates.load(write(tmp_path, "Hi ${metadata.nick|friend}", "$url", "$url"))
    assert templates.render(link(metadata={})).subject == "Hi friend"
    assert templates.render(link(metadata={"nick": "Ace"})).subject == "Hi Ace"


def write(directory: Path, subject: str, text: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "subject.txt").write_text(subject)
    (directory / "body.txt").write_text(text)
    (directory / "body.html").write_text(body)
    return directory


def test_every_value_is_html_escaped_in_the_html_part(tmp_path: Path) -> None:
    evil = "<script>alert(\"x\")</script> & 'q'"
    templates = EmailTemplates.load(
        write(
            tmp_path,
            "For ${metadata.name}",
            "$url ${metadata.name} $user_id",
            '<a href="$url">go</a> <p title="${metadata.name}">${metadata.name}</p>'
            " $user_id ${metadata.n} ${metadata.o}",
        )
    )
    rendered = templates.render(link(user_id=evil, metadata={"name": evil, "n": 12.5, "o": {"a": [1, "<b>"]}}))
    assert "<script>" not in rendered.html
    assert html.escape(evil, quote=True) in rendered.html  # the user id: escaped
    assert '"x"' not in rendered.html
    assert "'q'" not in rendered.html
    assert "12.5" in rendered.html
    assert "<b>" not in rendered.html and "&lt;b&gt;" not in rendered.html  # markup in metadata is not shown
    assert evil in rendered.text  # the text part is text: nothing to escape (the user id)
    assert rendered.subject == "For"  # the metadata field with markup is not shown, even escaped


def test_control_characters_and_lone_surrogates_are_dropped(tmp_path: Path) -> None:
    templates = EmailTemplates.load(
        write(tmp_path, "Hi ${metadata.name}", "$url ${metadata.name}", "$url ${metadata.name}")
    )
    assert templates.render(link(metadata={"name": "A\r\nBcc: x"})).subject == "Hi"  # a header line: not shown
    rendered = templates.render(link(metadata={"name": "A\r\nB\x00\ud800\tZ"}))
    assert rendered.subject == "Hi A B\ufffd Z"  # one line, whitespace collapsed
    assert "\x00" not in rendered.text
    assert "\r" not in rendered.text
    assert "\ud800" not in rendered.text
    rendered.text.encode("utf-8")
    rendered.html.encode("utf-8")


@pytest.mark.parametrize(
    ("subject", "text", "body", "complaint"),
    [
        ("Hi", "no link here", "$url", "does not contain the link"),
        ("Hi", "$url", "no link here", "does not contain the link"),
        ("Your link $url", "$url", "$url", "must not be in the subject"),
        ("Hi", "$url $nope", "$url", "unknown placeholder ${nope}"),
        ("Hi", "$url costs 5$", "$url", "a lone $"),
        ("Hi", "$url ${metadata.a b}", "$url", "a lone $"),
    ],
)
def test_a_bad_template_fails_at_load_with_a_clear_error(
    tmp_path: Path, subject: str, text: str, body: str, complaint: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        EmailTemplates.load(write(tmp_path, subject, text, body))


def test_a_missing_template_file_is_named(tmp_path: Path) -> None:
    write(tmp_path, "Hi", "$url", "$url")
    (tmp_path / "body.html").unlink()
    with pytest.raises(ConfigError, match=r"body\.html"):
        EmailTemplates.load(tmp_path)


def test_a_dollar_sign_is_written_twice(tmp_path: Path) -> None:
    rendered = EmailTemplates.load(write(tmp_path, "Save $$5", "$url", "$url")).render(link())
    assert rendered.subject == "Save $5"


def event(**detail: object) -> dict[str, object]:
    base: dict[str, object] = {
        "batch_id": "wave-1",
        "user_id": "user_1",
        "sign_in_token_id": "sit_0000000000000000000001",
        "url": URL,
        "expires_at": 1_717_837_200_000,
        "metadata": {"email": "ada@example.com"},
    }
    base.update(detail)
    return {"source": "signin-links", "detail-type": "SignInLinkMinted", "detail": base}


def test_a_minted_event_is_parsed() -> None:
    parsed = parse_minted(event(), BASE)
    assert parsed.token == "aaa.bbb.ccc"
    assert parsed.token_id == "sit_0000000000000000000001"
    assert parsed.metadata == {"email": "ada@example.com"}
    assert parsed.batch_id == "wave-1"
    assert parse_minted(event(metadata=None, batch_id=None), BASE).metadata == {}


@pytest.mark.parametrize(
    "elsewhere",
    [
        {"url": "https://evil.example/accept-token?token=aaa.bbb.ccc"},
        {"url": f"{BASE}/other?token=aaa.bbb.ccc"},
        {"url": f"{BASE}/accept-token?token="},
    ],
)
def test_a_link_to_another_site_is_ignored_not_malformed(elsewhere: dict[str, object]) -> None:
    with pytest.raises(IgnoredEvent) as raised:
        parse_minted(event(**elsewhere), BASE)
    assert not isinstance(raised.value, MalformedEvent)


@pytest.mark.parametrize(
    "bad",
    [
        {"url": None},
        {"url": 42},
        {"sign_in_token_id": "sess_0000000000000000000001"},
        {"sign_in_token_id": 7},
        {"user_id": ""},
        {"expires_at": "soon"},
        {"expires_at": True},
        {"batch_id": 3},
        {"metadata": ["email"]},
    ],
)
def test_a_detail_of_the_wrong_shape_is_malformed(bad: dict[str, object]) -> None:
    with pytest.raises(MalformedEvent):
        parse_minted(event(**bad), BASE)


@pytest.mark.parametrize(
    "whole",
    [
        {"source": "someone-else", "detail-type": "SignInLinkMinted", "detail": {}},
        {"source": "signin-links", "detail-type": "SignInLinkBatchCompleted", "detail": {}},
        {"source": "signin-links", "detail-type": "SignInLinkMinted", "detail": "text"},
        [],
        None,
    ],
)
def test_other_events_are_malformed(whole: object) -> None:
    with pytest.raises(MalformedEvent):
        parse_minted(whole, BASE)
