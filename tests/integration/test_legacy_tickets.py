"""Links mailed before the upgrade to Ed25519: HS256 tokens of the retired HMAC keyring.

Without a window (the default) the accept holds no HMAC key and refuses them, and says so: a
warning and the ``LegacyTicketsRefused`` metric, so that an operator who upgraded without reading
the notes sees why yesterday's links fail. With ``LegacyHs256TicketsUntil`` set, the accept reads
the retired keyring and honours an HS256 token that expires before that day, and nothing from
that day on (docs/deploying.md, "Upgrading").
"""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt
import pytest

from signin_links.keyring import HMAC, Keyring, generate_key
from signin_links.tickets import ticket_claims
from tests.conftest import Stack, reset_caches
from tests.handlers import accept, mint, status_of

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

DAY = 24 * 3600


@pytest.fixture
def retired(stack: Stack) -> Keyring:
    """The retired HMAC keyring of an upgraded stack (TicketKeyringSecret), with its key of last month."""
    ring = Keyring(kind=HMAC, keys=(generate_key(HMAC, now=int(time.time()) - 40 * DAY),))
    arn = stack.secretsmanager.create_secret(Name="ticket-keyring-retired", SecretString=ring.to_json())["ARN"]
    stack.env["RETIRED_ARN"] = arn
    return ring


def open_window(stack: Stack, monkeypatch: pytest.MonkeyPatch, until: float) -> None:
    monkeypatch.setenv("LEGACY_TICKET_KEYRING_SECRET_ID", stack.env["RETIRED_ARN"])
    monkeypatch.setenv("LEGACY_HS256_TICKETS_UNTIL", time.strftime("%Y-%m-%d", time.gmtime(until)))
    reset_caches()


def mailed_yesterday(context: Any, ring: Keyring, *, lifetime: int = 30 * DAY) -> tuple[str, str]:
    """A pending token as the old mint left it: the record, and its HS256 link."""
    minted = mint(context, user_id="user_mailed")
    claims = jwt.decode(minted["token"], options={"verify_signature": False})
    issued_at = int(time.time()) - DAY
    key = ring.keys[0]
    token = jwt.encode(
        ticket_claims(sid=claims["sid"], issued_at=issued_at, expires_in_seconds=lifetime, user_id="user_mailed"),
        key.secret,
        algorithm="HS256",
        headers={"kid": key.kid, "typ": "JWT"},
    )
    return minted["id"], token


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="signin-links")
    return caplog


def test_without_a_window_an_hs256_link_is_refused_and_says_why(
    stack: Stack, context: Any, retired: Keyring, warnings_logged: pytest.LogCaptureFixture, capsys: Any
) -> None:
    token_id, token = mailed_yesterday(context, retired)
    answer = accept(context, token)
    assert answer.status == 400, answer.body
    assert answer.code == "ticket_invalid_code"
    assert not answer.cookies
    assert status_of(stack, token_id) == "pending"
    assert any("HS256" in record.getMessage() for record in warnings_logged.records)
    assert "LegacyTicketsRefused" in capsys.readouterr().out  # the metric (EMF on stdout)


def test_inside_the_window_an_hs256_link_mailed_before_the_upgrade_signs_in(
    stack: Stack, context: Any, retired: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_id, token = mailed_yesterday(context, retired)
    open_window(stack, monkeypatch, until=time.time() + 31 * DAY)
    answer = accept(context, token)
    assert answer.status == 200, answer.body
    assert answer.json()["user_id"] == "user_mailed"
    assert status_of(stack, token_id) == "accepted"
    # New links are Ed25519 all the same.
    assert jwt.get_unverified_header(mint(context)["token"])["alg"] == "EdDSA"


def test_the_window_honours_nothing_that_outlives_it_nor_anything_after_it(
    stack: Stack, context: Any, retired: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a stolen retired key could forge is bounded by the day, whatever IAM still grants."""
    outliving_id, outliving = mailed_yesterday(context, retired, lifetime=60 * DAY)
    open_window(stack, monkeypatch, until=time.time() + 31 * DAY)
    answer = accept(context, outliving)
    assert (answer.status, answer.code) == (400, "ticket_invalid_code")
    assert status_of(stack, outliving_id) == "pending"

    token_id, token = mailed_yesterday(context, retired, lifetime=2 * DAY)
    open_window(stack, monkeypatch, until=time.time() - DAY)  # the day has come
    answer = accept(context, token)
    assert (answer.status, answer.code) == (400, "ticket_invalid_code")
    assert status_of(stack, token_id) == "pending"


def test_a_window_needs_both_settings_and_a_real_day(
    stack: Stack, context: Any, retired: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signin_links.config import ConfigError, parse_settings

    base = {"TABLE_NAME": "t"}
    with pytest.raises(ConfigError, match="set both or neither"):
        parse_settings({**base, "LEGACY_TICKET_KEYRING_SECRET_ID": "arn"})
    with pytest.raises(ConfigError, match="set both or neither"):
        parse_settings({**base, "LEGACY_HS256_TICKETS_UNTIL": "2027-01-31"})
    for bad in ("2027-02-30", "31/01/2027", "2027-1-31", "\uff12\uff10\uff12\uff17-01-31", "tomorrow"):
        with pytest.raises(ConfigError, match="LEGACY_HS256_TICKETS_UNTIL"):
            parse_settings({**base, "LEGACY_TICKET_KEYRING_SECRET_ID": "arn", "LEGACY_HS256_TICKETS_UNTIL": bad})
    settings = parse_settings(
        {**base, "LEGACY_TICKET_KEYRING_SECRET_ID": "arn", "LEGACY_HS256_TICKETS_UNTIL": "2027-01-31"}
    )
    assert settings.legacy_hs256_tickets_until == 1801353600  # 2027-01-31T00:00:00Z
