"""Audit events from stream records (``signin_links.audit``, ``functions/audit_events``), and the
agreement between ``AuditPipe``'s filters (template.yaml) and the mapping: a record the filters keep
is an audited change, and an audited change is kept."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.events.models import EventPattern

from local.template import load_template
from signin_links.audit import CHANGES, MalformedRecord, audit_event, change_of
from tests.conftest import load_function

NOW_MS = 1_795_528_800_123
AGE = "AuditRecordAge"


def record(event_name: str, pk: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {"Keys": {"pk": {"S": pk}}, "SequenceNumber": "1", "ApproximateCreationDateTime": 1}
    if old is not None:
        data["OldImage"] = old
    if new is not None:
        data["NewImage"] = new
    return {"eventID": "e1", "eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": data}


def token(pk: str = "sit_abc", status: str = "pending", **extra: str | int) -> dict[str, Any]:
    image: dict[str, Any] = {
        "pk": {"S": pk},
        "user_id": {"S": "user_1"},
        "status": {"S": status},
        "updated_at": {"N": str(NOW_MS)},
    }
    for name, value in extra.items():
        image[name] = {"N": str(value)} if isinstance(value, int) else {"S": value}
    return image


def filters() -> list[EventPattern]:
    props = load_template()["Resources"]["AuditPipe"]["Properties"]
    return [EventPattern.load(item["Pattern"]) for item in props["SourceParameters"]["FilterCriteria"]["Filters"]]


def kept_by_the_pipe(item: dict[str, Any]) -> bool:
    event: Any = json.loads(json.dumps(item))
    return any(pattern.matches_event(event) for pattern in filters())


def test_an_accepted_token_is_today_s_event_at_its_commit_time() -> None:
    accepted = record("MODIFY", "sit_abc", token(), token(status="accepted", session_id="sess_1"))
    event = audit_event(accepted)
    assert event is not None
    assert event.detail_type == "SignInTokenAccepted"
    assert event.detail == {
        "sign_in_token_id": "sit_abc",
        "user_id": "user_1",
        "session_id": "sess_1",
        "retried": False,
    }
    assert event.time == "2026-11-24T14:00:00.123Z"
    assert kept_by_the_pipe(accepted)


def test_a_revoked_token_is_an_event_too() -> None:
    revoked = record("MODIFY", "sit_abc", token(), token(status="revoked"))
    event = audit_event(revoked)
    assert event is not None
    assert event.detail_type == "SignInTokenRevoked"
    assert event.detail == {"sign_in_token_id": "sit_abc", "user_id": "user_1"}
    assert kept_by_the_pipe(revoked)


def session(status: str = "active") -> dict[str, Any]:
    """A session item's image as the store writes it (the attributes its events read)."""
    return token("sess_1", status, client_id="client_1", sign_in_token_id="sit_abc", created_at=NOW_MS)


SESSION_DETAIL = {"session_id": "sess_1", "user_id": "user_1", "client_id": "client_1", "sign_in_token_id": "sit_abc"}


def test_a_session_created_by_an_accept_is_an_event() -> None:
    created = record("INSERT", "sess_1", None, session())
    event = audit_event(created)
    assert event is not None
    assert event.detail_type == "SessionCreated"
    assert event.detail == SESSION_DETAIL
    assert event.time == "2026-11-24T14:00:00.123Z"
    assert kept_by_the_pipe(created)


@pytest.mark.parametrize(
    ("status", "detail_type"),
    [
        ("ended", "SessionEnded"),
        ("revoked", "SessionRevoked"),
        ("expired", "SessionExpired"),
        ("abandoned", "SessionAbandoned"),
    ],
)
def test_every_end_of_an_active_session_is_an_event(status: str, detail_type: str) -> None:
    ended = record("MODIFY", "sess_1", session(), session(status))
    event = audit_event(ended)
    assert event is not None
    assert event.detail_type == detail_type
    assert event.detail == SESSION_DETAIL
    assert kept_by_the_pipe(ended)


@pytest.mark.parametrize(
    ("status", "reason", "detail_type"),
    [
        ("revoked", "refresh_token_reused", "SessionRevoked"),
        ("revoked", "all_sessions_revoked", "SessionRevoked"),
        ("ended", "signed_in_again", "SessionEnded"),
        ("ended", "signed_out", "SessionEnded"),
    ],
)
def test_an_end_the_service_chose_says_why(status: str, reason: str, detail_type: str) -> None:
    """A revocation for a reused refresh token shows why in its audit event."""
    ended = record("MODIFY", "sess_1", session(), {**session(status), "status_reason": {"S": reason}})
    event = audit_event(ended)
    assert event is not None
    assert event.detail_type == detail_type
    assert event.detail == {**SESSION_DETAIL, "reason": reason}
    assert kept_by_the_pipe(ended)


def test_a_session_s_activity_is_no_event() -> None:
    touched = record("MODIFY", "sess_1", session(), {**session(), "last_active_at": {"N": str(NOW_MS)}})
    assert audit_event(touched) is None
    assert not kept_by_the_pipe(touched)


@pytest.mark.parametrize(
    "item",
    [
        record("INSERT", "sit_abc", None, token()),  # minted (the URL, never stored, is the batch's event)
        record("MODIFY", "sit_abc", token(status="accepted"), token(status="accepted", x="1")),  # no change
        record("MODIFY", "sit_abc", token(status="revoked"), token(status="accepted")),  # not from pending
        record("REMOVE", "sit_abc", token(status="accepted"), None),  # TTL housekeeping
        record("MODIFY", "batch#b1", token("batch#b1", "running"), token("batch#b1", "completed")),
        record("MODIFY", "sess_1", token("sess_1"), token("sess_1", "accepted")),  # another kind of item
    ],
    ids=["mint", "same status", "not pending", "ttl delete", "batch header", "other kind"],
)
def test_what_is_not_an_audited_change_has_no_event_and_is_filtered_out(item: dict[str, Any]) -> None:
    assert audit_event(item) is None
    assert not kept_by_the_pipe(item)


def test_an_audited_change_missing_what_its_event_needs_is_malformed_and_left_out() -> None:
    no_session = record("MODIFY", "sit_abc", token(), token(status="accepted"))
    with pytest.raises(MalformedRecord, match="session_id"):
        audit_event(no_session)
    no_time = record("MODIFY", "sit_abc", token(), {**token(status="revoked"), "updated_at": {"S": "soon"}})
    with pytest.raises(MalformedRecord, match="updated_at"):
        audit_event(no_time)
    good = record("MODIFY", "sit_def", token("sit_def"), token("sit_def", "revoked"))
    events = load_function("audit_events").lambda_handler([no_session, no_time, good], None)
    assert [(event["detail_type"], event["detail"]["sign_in_token_id"]) for event in events] == [
        ("SignInTokenRevoked", "sit_def")
    ]


def test_the_enrichment_keeps_the_batch_order() -> None:
    changed = [token(f"sit_{n}", "revoked" if n % 2 else "accepted", session_id="s") for n in range(10)]
    batch = [record("MODIFY", f"sit_{n}", token(f"sit_{n}"), new) for n, new in enumerate(changed)]
    events = load_function("audit_events").lambda_handler(batch, None)
    assert [event["detail"]["sign_in_token_id"] for event in events] == [f"sit_{n}" for n in range(10)]


def test_each_batch_reports_the_age_of_its_oldest_record_as_an_embedded_metric(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipes publishes no iterator age for a stream: the enrichment does (AuditPipeLagAlarm)."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stack-AuditEventsFunction-abc")
    app = load_function("audit_events")
    now = 1_800_000_000.0
    monkeypatch.setattr(app.time, "time", lambda: now)
    batch = [record("MODIFY", f"sit_{n}", token(f"sit_{n}"), token(f"sit_{n}", "revoked")) for n in range(3)]
    batch[0]["dynamodb"]["ApproximateCreationDateTime"] = now - 42  # seconds, as stream records say
    batch[1]["dynamodb"]["ApproximateCreationDateTime"] = int((now - 600.5) * 1000)  # milliseconds precision
    batch[2]["dynamodb"]["ApproximateCreationDateTime"] = "yesterday"  # not a time: not counted
    app.lambda_handler(batch, None)
    (line,) = capsys.readouterr().out.splitlines()
    metric = json.loads(line)
    assert metric[AGE] == 600.5
    assert metric["FunctionName"] == "stack-AuditEventsFunction-abc"
    (directive,) = metric["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": "SigninLinks",
        "Dimensions": [["FunctionName"]],
        "Metrics": [{"Name": AGE, "Unit": "Seconds"}],
    }
    assert metric["_aws"]["Timestamp"] == int(now * 1000)
    app.lambda_handler([], None)  # nothing to measure: no line
    assert capsys.readouterr().out == ""


def test_the_lag_alarm_watches_the_metric_the_enrichment_publishes() -> None:
    resources = load_template()["Resources"]
    alarm = resources["AuditPipeLagAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("SigninLinks", AGE)
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "AuditEventsFunction"}}]
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] * alarm["DatapointsToAlarm"] < 24 * 3600 / 10  # far ahead of the stream's 24 h


# --- properties: the filters and the mapping agree; nothing the pipe hands over makes it raise ---

STATUSES = [
    "pending", "accepted", "revoked", "active", "ended", "expired", "abandoned", "completed", "running", "requested"
]  # fmt: skip
PREFIXES = ["sit_", "sess_", "renew#", "email#", "batch#", "batch-idempotency#", "SIT_", "sit", "\uff53it_", "renew"]
ids = st.one_of(
    st.sampled_from(PREFIXES).flatmap(lambda prefix: st.text(max_size=12).map(lambda body: prefix + body)),
    st.text(max_size=20),
)
statuses = st.one_of(st.sampled_from(STATUSES), st.text(max_size=10))
strings = st.text(max_size=30)  # lone surrogates, non-ASCII, empty
numbers = st.one_of(st.integers(min_value=-(10**20), max_value=10**20).map(str), strings)


@st.composite
def images(draw: st.DrawFn, pk: str) -> dict[str, Any]:
    image: dict[str, Any] = {"pk": {"S": pk}, "status": {"S": draw(statuses)}}
    for name in ("user_id", "session_id", "client_id", "sign_in_token_id", "delivery", "redirect_url"):
        if draw(st.booleans()):
            image[name] = {"S": draw(strings)}
    if draw(st.booleans()):
        image["updated_at"] = {"N": draw(numbers)}
    return image


@st.composite
def stream_records(draw: st.DrawFn) -> dict[str, Any]:
    """Records as DynamoDB writes them: string attributes are strings, numbers are numeric text."""
    pk = draw(ids)
    event_name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    old = draw(images(pk)) if event_name != "INSERT" else None
    new = draw(images(pk)) if event_name != "REMOVE" else None
    return record(event_name, pk, old, new)


@st.composite
def audited_and_near_misses(draw: st.DrawFn) -> dict[str, Any]:
    """A record of each audited change in CHANGES, then perhaps one thing about it changed (the
    kind of item, the event, a status): the records a filter and its mapping must agree on."""
    change = draw(st.sampled_from(CHANGES))
    pk = change.id_prefix + draw(st.text(min_size=1, max_size=8))
    old_status = draw(st.sampled_from(sorted(change.old_status))) if change.old_status else None
    new_status = draw(st.sampled_from(sorted(change.new_status)))
    event_name = "INSERT" if change.old_status is None else "MODIFY"
    miss = draw(st.sampled_from(["none", "prefix", "event", "old", "new"]))
    if miss == "prefix":
        pk = draw(st.sampled_from(PREFIXES)) + pk[len(change.id_prefix) :]
    elif miss == "event":
        event_name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    elif miss == "old":
        old_status = draw(statuses)
    elif miss == "new":
        new_status = draw(statuses)
    old = token(pk, old_status) if old_status is not None and event_name != "INSERT" else None
    new = (
        token(pk, new_status, session_id="sess_1", client_id="client_1", sign_in_token_id="sit_1", delivery="email")
        if event_name != "REMOVE"
        else None
    )
    return record(event_name, pk, old, new)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)


@st.composite
def malformed_records(draw: st.DrawFn) -> Any:
    """Anything at all, and records whose images have the wrong JSON types."""
    item = draw(stream_records())
    fields = ["eventName", "dynamodb", "Keys", "NewImage", "OldImage", "ApproximateCreationDateTime"]
    for path in draw(st.lists(st.sampled_from(fields))):
        target = item if path in ("eventName", "dynamodb") else item["dynamodb"]
        if isinstance(target, dict):
            target[path] = draw(json_values | creation_times if path == "ApproximateCreationDateTime" else json_values)
    return draw(st.one_of(st.just(item), json_values))


# What a record's ApproximateCreationDateTime may hold: seconds and milliseconds, and every hostile
# number (NaN, infinities, huge, negative, a bool, numeric text).
creation_times = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),  # unbounded: past what a float holds
    st.integers(min_value=10**300, max_value=10**400),
    st.booleans(),
    st.integers(min_value=0, max_value=4 * 10**12).map(str),
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(stream_records(), audited_and_near_misses()))
def test_the_pipe_keeps_exactly_the_records_the_mapping_knows(item: dict[str, Any]) -> None:
    assert kept_by_the_pipe(item) == (change_of(item) is not None)


@settings(deadline=None)
@given(st.lists(st.one_of(creation_times, json_values), max_size=6), st.floats(min_value=0, max_value=4e9))
def test_the_age_of_any_creation_times_is_none_or_a_finite_age(created: list[Any], now: float) -> None:
    app = load_function("audit_events")
    batch = [record("MODIFY", "sit_a", token(), token(status="revoked")) for _ in created]
    for item, value in zip(batch, created, strict=True):
        item["dynamodb"]["ApproximateCreationDateTime"] = value
    age = app.oldest_record_age([*batch, "not a record", {"dynamodb": "x"}], now)
    assert age is None or (math.isfinite(age) and age >= 0)
    json.loads(app.age_metric_line(age or 0.0, "f", now))


@settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],  # capsys: read each time
    deadline=None,
)
@given(batch=st.lists(st.one_of(stream_records(), malformed_records()), max_size=5), other=json_values)
def test_the_enrichment_never_raises_and_answers_events_only(
    capsys: pytest.CaptureFixture[str], batch: list[Any], other: Any
) -> None:
    handler = load_function("audit_events").lambda_handler
    capsys.readouterr()
    for payload in (batch, other):
        events = handler(payload, None)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) <= 1
        for line in lines:  # the metric line is valid EMF with a finite, non-negative age
            age = json.loads(line)[AGE]
            assert isinstance(age, float) and math.isfinite(age) and age >= 0
        assert isinstance(events, list)
        json.dumps(events)  # the pipe gets JSON back
        for event in events:
            assert set(event) == {"detail_type", "detail", "time"}
            assert event["detail_type"] in {change.detail_type for change in CHANGES}
            assert isinstance(event["detail"], dict)
            assert event["time"].endswith("Z")


def test_a_renewal_request_is_the_event_the_mint_or_the_application_acts_on() -> None:
    requested = token("renew#sit_abc", "requested", sign_in_token_id="sit_abc", delivery="email")
    requested["redirect_url"] = {"S": "https://app.example.com/cart"}
    event = audit_event(record("INSERT", "renew#sit_abc", None, requested))
    assert event is not None
    assert event.detail_type == "SignInLinkRenewalRequested"
    assert event.detail == {
        "sign_in_token_id": "sit_abc",
        "user_id": "user_1",
        "redirect_url": "https://app.example.com/cart",
        "org_id": None,
        "delivery": "email",
    }
    assert kept_by_the_pipe(record("INSERT", "renew#sit_abc", None, requested))
    assert not kept_by_the_pipe(record("MODIFY", "renew#sit_abc", requested, requested))
    assert not kept_by_the_pipe(record("REMOVE", "renew#sit_abc", requested, None))


# --- Rebuilding the events of a lost stretch of the stream from the table (docs/operations.md) ---


@st.composite
def lifecycles(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """An audited item's stream records, as the store writes them, and the item they leave: created
    (a token pending, a session active, a renewal requested), then perhaps one status change."""
    kind = draw(st.sampled_from(["token", "session", "renewal"]))
    created = draw(st.integers(min_value=1_700_000_000_000, max_value=1_900_000_000_000))
    changed = created + draw(st.integers(min_value=0, max_value=10**9))
    base: dict[str, Any] = {"user_id": {"S": "user_1"}, "created_at": {"N": str(created)}}
    if kind == "token":
        pk, first, later = "sit_" + draw(st.text(min_size=1, max_size=6)), "pending", ["accepted", "revoked"]
        base["session_id"] = {"S": "sess_9"}
    elif kind == "session":
        pk, first, later = "sess_" + draw(st.text(min_size=1, max_size=6)), "active", ["ended", "revoked", "expired"]
        base.update({"client_id": {"S": "client_1"}, "sign_in_token_id": {"S": "sit_1"}})
    else:
        pk, first, later = "renew#sit_" + draw(st.text(min_size=1, max_size=6)), "requested", []
        base.update({"sign_in_token_id": {"S": pk.removeprefix("renew#")}, "delivery": {"S": "email"}})
    item = {**base, "pk": {"S": pk}, "status": {"S": first}, "updated_at": {"N": str(created)}}
    records = [{"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": pk}}, "NewImage": item}}]
    if later and draw(st.booleans()):
        after = {**item, "status": {"S": draw(st.sampled_from(later))}, "updated_at": {"N": str(changed)}}
        records.append(
            {"eventName": "MODIFY", "dynamodb": {"Keys": {"pk": {"S": pk}}, "OldImage": item, "NewImage": after}}
        )
        item = after
    return records, item


@settings(deadline=None)
@given(lifecycle=lifecycles(), since=st.integers(1_690_000_000_000, 1_910_000_000_000), span=st.integers(0, 10**10))
def test_the_events_rebuilt_from_an_item_are_those_the_pipe_published_in_the_window(
    lifecycle: tuple[list[dict[str, Any]], dict[str, Any]], since: int, span: int
) -> None:
    from signin_links.audit import rebuilt_events

    records, item = lifecycle
    published = []
    for stream_record in records:
        committed = int(stream_record["dynamodb"]["NewImage"]["updated_at"]["N"])
        event = audit_event(stream_record)
        if event is not None and since <= committed < since + span:
            published.append(event)
    assert rebuilt_events(item, since, since + span) == sorted(published, key=lambda event: event.time)


def test_a_rebuilt_session_that_ended_has_both_its_events() -> None:
    from signin_links.audit import rebuilt_events

    ended = {
        "pk": {"S": "sess_1"},
        "status": {"S": "ended"},
        "user_id": {"S": "user_1"},
        "client_id": {"S": "client_1"},
        "sign_in_token_id": {"S": "sit_1"},
        "created_at": {"N": str(NOW_MS)},
        "updated_at": {"N": str(NOW_MS + 60_000)},
    }
    events = rebuilt_events(ended, NOW_MS, NOW_MS + 3_600_000)
    assert [(event.detail_type, event.time) for event in events] == [
        ("SessionCreated", "2026-11-24T14:00:00.123Z"),
        ("SessionEnded", "2026-11-24T14:01:00.123Z"),
    ]
    assert rebuilt_events(ended, NOW_MS + 1, NOW_MS + 3_600_000)[0].detail_type == "SessionEnded"
    assert rebuilt_events({"pk": {"S": "batch_x"}, "status": {"S": "completed"}}, 0, 10**15) == []
