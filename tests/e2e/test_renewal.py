"""A way back from a dead link, end to end on the local stack (delivery by email on, LinkRenewal
auto): an emailed batch, its link used, then opened again in another browser; "Email me a new
link"; the request's stream record goes through AuditPipe to the bus, the rule to the mint, the new
SignInLinkMinted through the email queue to SES; a second email to the same address, in the user's
language, whose link signs the same user in. Chromium clicks every step."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest

from signin_links.batch.plan import token_id_for
from signin_links.renewal import renewal_token_id
from tests.e2e.batch_events import put_batch
from tests.e2e.conftest import LocalStackHandle, running_stack
from tests.e2e.inbox import mails_to
from tests.e2e.polling import wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    env = {"LOCAL_PARAMETER_AppName": "Acme"}  # delivery by email is on by default locally
    with running_stack(tmp_path_factory.mktemp("renewal-stack"), env=env) as handle:
        yield handle


def link_in(mail: dict[str, Any]) -> str:
    found = re.search(r'<a href="([^"]+/accept-token\?token=[^"]+)"', mail["body"])
    assert found, mail["body"][:500]
    return unescape(found.group(1))


def test_a_dead_emailed_link_brings_a_second_email_that_signs_the_same_user_in(
    stack: LocalStackHandle, browser: Any
) -> None:
    batch_id = f"e2e-renew-{uuid.uuid4().hex[:8]}"
    address = f"ada.{uuid.uuid4().hex[:8]}@example.com"
    user = {"user_id": "user_ada", "metadata": {"email": address, "first_name": "Ada", "locale": "fr"}}
    put_batch(stack, {"batch_id": batch_id, "users": [user]})
    (first,) = wait_for(lambda: mails_to(stack, address), timeout=90, interval=0.5)
    assert first["subject"] == "Votre lien de connexion à Acme"
    original = token_id_for(batch_id, "user_ada")

    clicker = browser.new_context(locale="fr-FR")  # Ada's browser: the link works once
    page = clicker.new_page()
    page.goto(link_in(first))
    page.get_by_text("Connecté en tant que user_ada").wait_for()
    clicker.close()

    later = browser.new_context(locale="fr-FR")  # the same email opened again elsewhere: a dead link
    page = later.new_page()
    page.goto(link_in(first))
    page.locator("#error-code").wait_for()
    assert page.locator("#error-code").inner_text() == "sign_in_token_already_used_code"
    page.get_by_role("button", name="M\u2019envoyer un nouveau lien").click()
    page.get_by_role("heading", name="Un nouveau lien est en route").wait_for()

    mails = wait_for(lambda: [m for m in mails_to(stack, address) if m["id"] != first["id"]], timeout=90, interval=0.5)
    (second,) = mails
    assert "Voici le nouveau lien de connexion que vous avez demandé" in second["body"]
    assert "Bonjour Ada," in second["body"]
    renewed = renewal_token_id(original)
    assert f"token={renewed}" not in second["body"]  # the link carries a token, never its id alone
    assert stack.status(renewed) == "pending"

    page.goto(link_in(second))
    page.get_by_text("Connecté en tant que user_ada").wait_for()
    assert stack.status(renewed) == "accepted"

    # A second press for the same dead link sends nothing more.
    page = later.new_page()
    page.goto(link_in(first))
    page.get_by_role("button", name="M\u2019envoyer un nouveau lien").click()
    page.get_by_role("heading", name="Un nouveau lien a déjà été envoyé").wait_for()
    later.close()
    assert len(mails_to(stack, address)) == 2
