"""The pace of SendEmail calls (``signin_links.send_pace``): each environment's share of the account's
SES rate, slots spaced by it, throttles halving it, the quota read from SES and read again."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from signin_links.errors import SignInLinksError, unavailable
from signin_links.send_pace import (
    BURST_S,
    MIN_SHARE_FRACTION,
    QUOTA_MAX_AGE_S,
    RECOVERY_STEPS,
    SendPace,
    SendQuota,
    read_quota,
)


@dataclass
class Clock:
    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pace(rate: float = 14.0, concurrency: int = 2, cap: float = 0.0, clock: Clock | None = None) -> SendPace:
    clock = clock or Clock()
    return SendPace(
        lambda: SendQuota(rate, 50_000, 0), concurrency=concurrency, cap=cap, clock=clock, sleep=clock.sleep
    )


def test_each_environment_takes_an_equal_share_of_the_account_rate() -> None:
    assert pace(14, 2).share() == 7
    assert pace(14, 2, cap=10).share() == 5  # EmailSendRate below the account's rate
    assert pace(14, 2, cap=50).share() == 7  # and never above it
    assert pace(1, 2).share() == 0.5  # the sandbox's 1 email/s


def test_slots_are_one_share_apart_and_the_sum_over_environments_never_exceeds_the_rate() -> None:
    clock = Clock()
    environments = [pace(14, 2, clock=clock), pace(14, 2, clock=clock)]
    sent_at: list[float] = []
    for n in range(70):  # 70 sends over two environments taking turns: 5 s at 14/s
        assert environments[n % 2].wait(budget_s=60)
        sent_at.append(clock.now)
    # SES's rate as a token bucket (a second's burst, refilled at the rate): no send is refused.
    tokens, last = 14.0, sent_at[0]
    for t in sent_at:
        tokens = min(14.0, tokens + (t - last) * 14)
        last = t
        assert tokens >= 1
        tokens -= 1
    # Half a second's burst (3 each), then one share apart: 35 sends each end after ~4.5 s.
    assert sent_at[5] == sent_at[0]
    assert sent_at[6] > sent_at[0]
    assert sent_at[-1] - sent_at[0] == pytest.approx(4.5, abs=1 / 7)


def test_after_an_idle_moment_at_most_half_a_second_of_the_share_goes_at_once() -> None:
    clock = Clock()
    environment = pace(14, 2, clock=clock)  # 7/s
    clock.now += 3600  # idle for an hour: still no more than half a second's worth at once
    for _ in range(3):
        assert environment.wait(budget_s=60)
    assert clock.slept == []
    assert environment.wait(budget_s=60)
    assert clock.slept == [pytest.approx(3 / 7 - (BURST_S - 1 / 7))]


def test_a_slot_beyond_the_budget_is_not_taken_nor_waited_for() -> None:
    clock = Clock()
    slow = pace(1, 2, clock=clock)  # 0.5/s: a slot every 2 s, no burst (less than one send a second)
    assert slow.wait(budget_s=5)
    assert slow.wait(budget_s=5)  # 2 s later
    assert clock.slept == [pytest.approx(2.0)]
    assert not slow.wait(budget_s=1.5)  # the next is 2 s away
    assert clock.slept == [pytest.approx(2.0)]


def test_a_throttle_halves_the_pace_and_sends_regain_it_step_by_step() -> None:
    clock = Clock()
    environment = pace(14, 2, clock=clock)
    environment.throttled()
    assert environment.rate() == pytest.approx(3.5)
    environment.throttled()
    assert environment.rate() == pytest.approx(1.75)
    for _ in range(RECOVERY_STEPS):
        environment.sent()
    assert environment.rate() == 7
    for _ in range(40):
        environment.throttled()
    assert environment.rate() == pytest.approx(7 * MIN_SHARE_FRACTION)  # slower, never stopped


def test_after_a_throttle_the_next_slot_is_a_whole_new_interval_away_without_a_burst() -> None:
    clock = Clock()
    environment = pace(14, 2, clock=clock)
    assert environment.wait(budget_s=10)
    environment.throttled()  # 3.5/s now
    assert environment.wait(budget_s=10)
    assert sum(clock.slept) == pytest.approx(1 / 3.5)
    assert environment.wait(budget_s=10)
    assert sum(clock.slept) == pytest.approx(2 / 3.5)


def test_the_quota_is_read_once_then_again_when_old_and_a_failed_reread_keeps_the_last() -> None:
    clock = Clock()
    answers: list[SendQuota | Exception] = [SendQuota(14, 50_000, 0), SendQuota(28, 100_000, 10)]
    reads: list[int] = []

    def read() -> SendQuota:
        reads.append(1)
        answer = answers.pop(0) if answers else unavailable("Amazon SES")
        if isinstance(answer, Exception):
            raise answer
        return answer

    environment = SendPace(read, concurrency=2, clock=clock, sleep=clock.sleep)
    assert environment.share() == 7
    assert environment.share() == 7
    assert len(reads) == 1
    clock.now += QUOTA_MAX_AGE_S
    assert environment.share() == 14  # SES raised the quota
    clock.now += QUOTA_MAX_AGE_S
    assert environment.share() == 14  # SES did not answer: the last quota stands
    assert len(reads) == 3


def test_without_any_quota_read_nothing_is_sent() -> None:
    def read() -> SendQuota:
        raise unavailable("Amazon SES")

    environment = SendPace(read, concurrency=2)
    with pytest.raises(SignInLinksError):
        environment.wait(budget_s=10)


def test_no_sending_allowed_means_no_slot() -> None:
    assert not pace(0, 2).wait(budget_s=100)


class FakeSes:
    def __init__(self, answer: object) -> None:
        self.answer = answer

    def get_account(self) -> object:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_read_quota_takes_sesv2_get_account() -> None:
    quota = read_quota(FakeSes({"SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 3.0}}))
    assert quota == SendQuota(14.0, 50000.0, 3.0)


@pytest.mark.parametrize(
    "answer",
    [
        ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetAccount"),
        EndpointConnectionError(endpoint_url="https://email"),
        {},
        {"SendQuota": {"MaxSendRate": "fast"}},
        {"SendQuota": None},
    ],
)
def test_an_unreadable_quota_is_service_unavailable(answer: object) -> None:
    with pytest.raises(SignInLinksError, match="Amazon SES"):
        read_quota(FakeSes(answer))
