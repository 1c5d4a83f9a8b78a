"""The accept function's pages through the real handler on moto: the reader's language (Accept-Language,
then DEFAULT_LANGUAGE), the brand's settings, and a team's own templates (PAGE_TEMPLATE_DIR). The
/v1-style JSON answers of the same routes keep Clerk's English messages."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests import handlers
from tests.conftest import Stack, reset_caches
from tests.handlers import Answer, accept_get_event, accept_post_event, encoded, mint

GERMAN = "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7"


def get(context: Any, token: str | None, language: str | None) -> Answer:
    event = accept_get_event(token)
    if language is not None:
        event["headers"]["accept-language"] = language
    return handlers.invoke("accept_token", event, context)


def post(context: Any, token: str, language: str, *, accept: str = handlers.HTML) -> Answer:
    event = accept_post_event(f"token={encoded(token)}", accept=accept)
    event["headers"]["accept-language"] = language
    return handlers.invoke("accept_token", event, context)


def used_token(context: Any) -> str:
    token = str(mint(context, user_id="user_early")["token"])
    assert post(context, token, "en").status == 200
    return token


def test_the_page_follows_accept_language(stack: Stack, context: Any) -> None:
    token = mint(context)["token"]
    page = get(context, token, GERMAN)
    assert page.status == 200
    assert '<html lang="de" dir="ltr">' in page.body
    assert "<h1>Anmelden</h1>" in page.body
    assert page.headers["Content-Language"] == "de"
    assert page.headers["Vary"] == "Accept-Language"


def test_arabic_is_right_to_left_from_the_page_to_the_signed_in_answer(stack: Stack, context: Any) -> None:
    token = mint(context, user_id="user_ar")["token"]
    assert '<html lang="ar" dir="rtl">' in get(context, token, "ar").body
    signed_in = post(context, token, "ar-EG,ar;q=0.9")
    assert signed_in.status == 200, signed_in.body
    assert '<html lang="ar" dir="rtl">' in signed_in.body
    assert "تم تسجيل الدخول باسم" in signed_in.body
    assert '<strong id="user-id" dir="auto">user_ar</strong>' in signed_in.body


def test_a_dead_link_is_explained_in_the_reader_s_language(stack: Stack, context: Any) -> None:
    page = post(context, used_token(context), "fr-CA")
    assert page.status == 400
    assert "<h1>Ce lien de connexion a déjà été utilisé</h1>" in page.body
    assert page.code == "sign_in_token_already_used_code"  # the code stays the wire code
    forged = get(context, "eyJhbGciOiJub25lIn0.e30.", "fr")
    assert "<h1>Ce lien de connexion n\u2019est pas valide</h1>" in forged.body


@pytest.mark.parametrize("header", [None, "", "tlh", "de;q=abc", "*;q=0", "x" * 5000, "\u00e9\u00e9"])
def test_an_unknown_or_malformed_header_falls_back_to_the_default_language(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, header: str | None
) -> None:
    monkeypatch.setenv("DEFAULT_LANGUAGE", "ja")
    reset_caches()
    page = get(context, None, header)
    assert page.status == 200
    assert '<html lang="ja" dir="ltr">' in page.body
    assert "トークンが指定されていません。" in page.body


def test_json_answers_keep_clerk_s_english_messages(stack: Stack, context: Any) -> None:
    answer = post(context, used_token(context), GERMAN, accept="application/json")
    assert answer.status == 400
    (error,) = answer.json()["errors"]
    assert error["code"] == "sign_in_token_already_used_code"
    assert error["long_message"] == "The sign-in link has already been used to sign in."


def test_the_brand_settings_reach_the_page(stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_NAME", "Acme")
    monkeypatch.setenv("BRAND_COLOR", "#0B5FFF")
    monkeypatch.setenv("LOGO_URL", "https://cdn.example.com/acme.png")
    monkeypatch.setenv("SUPPORT_EMAIL", "help@acme.example")
    reset_caches()
    page = post(context, used_token(context), "es")
    assert "<title>Este enlace de inicio de sesión ya se usó \u2013 Acme</title>" in page.body
    assert ":root{--brand:#0b5fff}" in page.body
    assert '<img src="https://cdn.example.com/acme.png" alt="Acme">' in page.body
    assert '<a href="mailto:help@acme.example">help@acme.example</a>' in page.body
    assert "img-src https://cdn.example.com;" in page.headers["Content-Security-Policy"]


def test_a_team_s_own_templates_are_served_with_their_own_hashes(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "accept.css").write_text("main{border:4px solid var(--brand)}")
    (tmp_path / "signed_in.html").write_text('<h1 class="team">${heading}</h1><p id="status">${signed_in_as}</p>')
    monkeypatch.setenv("PAGE_TEMPLATE_DIR", str(tmp_path))
    reset_caches()
    token = mint(context, user_id="user_team")["token"]
    page = get(context, token, "pt-BR")
    assert "main{border:4px solid var(--brand)}" in page.body
    signed_in = post(context, token, "pt-BR")
    assert '<h1 class="team">Conectado</h1>' in signed_in.body
    style = signed_in.body.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}';" in signed_in.headers["Content-Security-Policy"]
