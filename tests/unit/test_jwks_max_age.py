"""How long a verifier may cache the JWKS: a new session key is in the secret
``key_activation_delay`` before it signs; a function's secret cache (``secrets_max_age``) and a
verifier's JWKS cache must add up to less than that, by the same margin rotation keeps."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signin_links.config import parse_settings
from signin_links.redeem import RedemptionMetrics, Redemptions
from signin_links.rotation.policy import ACTIVATION_MARGIN_SECONDS, RotationError, check_timing


def max_age(secrets_max_age: int, activation_delay: int) -> int:
    settings = parse_settings(
        {
            "TABLE_NAME": "t",
            "SECRETS_MAX_AGE_SECONDS": str(secrets_max_age),
            "KEY_ACTIVATION_DELAY_SECONDS": str(activation_delay),
        }
    )
    unused: Any = None
    return Redemptions(settings, unused, unused, unused, metrics=RedemptionMetrics()).jwks_max_age()


def test_the_defaults_leave_the_margin() -> None:
    assert ACTIVATION_MARGIN_SECONDS >= 60
    assert max_age(300, 600) == 600 - 300 - ACTIVATION_MARGIN_SECONDS == 240


@given(
    secrets_max_age=st.integers(min_value=1, max_value=7200),
    extra=st.integers(min_value=0, max_value=20_000),
)
def test_both_caches_together_stay_a_margin_short_of_the_activation_delay(secrets_max_age: int, extra: int) -> None:
    activation_delay = secrets_max_age + ACTIVATION_MARGIN_SECONDS + extra  # what rotation accepts
    seconds = max_age(secrets_max_age, activation_delay)
    assert 0 <= seconds <= 3600
    assert secrets_max_age + seconds + ACTIVATION_MARGIN_SECONDS <= activation_delay
    assert seconds == min(3600, extra)  # and no shorter than it needs to be


@given(secrets_max_age=st.integers(min_value=1, max_value=7200), short=st.integers(min_value=1, max_value=7200))
def test_a_delay_that_rotation_refuses_gives_no_cache_at_all(secrets_max_age: int, short: int) -> None:
    activation_delay = max(0, secrets_max_age + ACTIVATION_MARGIN_SECONDS - short)
    settings = parse_settings(
        {
            "TABLE_NAME": "t",
            "SECRETS_MAX_AGE_SECONDS": str(secrets_max_age),
            "KEY_ACTIVATION_DELAY_SECONDS": str(activation_delay),
        }
    )
    with pytest.raises(RotationError):
        check_timing(settings)  # rotation refuses to add a key with such a delay
    assert max_age(secrets_max_age, activation_delay) == 0
