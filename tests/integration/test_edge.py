"""EdgeProtection: every HTTP function refuses what did not come through CloudFront.

An HTTP API carries no WAF and no resource policy, and its execute-api URL stays open whatever is in
front of it. With ``EDGE_SECRET_ID`` set (the template sets it with ``EdgeProtection=cloudfront-waf``),
a request without the header CloudFront adds is ``403 edge_required`` before any other work, on
every route of every HTTP function (each event file in ``events/`` stands for its route), and
changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.template import functions, http_routes
from signin_links.edge import HEADER
from tests.conftest import ROOT, Stack, load_event, reset_caches
from tests.handlers import Answer, invoke
from tests.robustness.faults import injected

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

VALUE = "edge-" + "e" * 43
PREVIOUS = "edge-" + "p" * 43


def directory_of(function: str) -> str:
    return functions()[function].source_dir.name


def http_events() -> list[tuple[str, str]]:
    """(event file, function directory) for every event in events/ that is a request to a route."""
    functions = {f"{route.method} {route.path}": route.function for route in http_routes()}
    found = []
    for path in sorted((ROOT / "events").glob("*.json")):
        route_key = json.loads(path.read_text()).get("routeKey")
        if route_key in functions:
            found.append((path.name, directory_of(functions[route_key])))
    return found


EVENTS = http_events()


@pytest.fixture
def edge(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    secret = json.dumps({"header_value": VALUE, "previous_header_value": PREVIOUS})
    arn = str(stack.secretsmanager.create_secret(Name="edge-origin", SecretString=secret)["ARN"])
    monkeypatch.setenv("EDGE_SECRET_ID", arn)
    reset_caches()
    return arn


def call(name: str, directory: str, context: Any, header: str | None) -> Answer:
    event = load_event(name)
    event["headers"] = {k: v for k, v in (event.get("headers") or {}).items() if k != HEADER}
    if header is not None:
        event["headers"][HEADER] = header
    return invoke(directory, event, context)


def test_every_http_function_has_events_here() -> None:
    assert {directory for _, directory in EVENTS} == {"mint_link", "accept_token", "sessions", "clerk_frontend"}


@pytest.mark.parametrize(("name", "directory"), EVENTS, ids=[name for name, _ in EVENTS])
def test_a_request_that_did_not_come_through_the_edge_is_refused_and_changes_nothing(
    stack: Stack, edge: str, context: Any, monkeypatch: pytest.MonkeyPatch, name: str, directory: str
) -> None:
    with injected(monkeypatch) as aws:
        for header in (None, "", "x" * 48, VALUE[:-1], VALUE + "x", VALUE.upper(), f"{VALUE},{VALUE}"):
            answer = call(name, directory, context, header)
            assert answer.status == 403, (header, answer.status, answer.body[:300])
            assert answer.code == "edge_required", header
            assert not answer.cookies
    assert aws.count("dynamodb") == 0  # not even a read: what the edge refuses costs the table nothing


@pytest.mark.parametrize(("name", "directory"), EVENTS, ids=[name for name, _ in EVENTS])
def test_what_came_through_the_edge_is_served_as_before(
    stack: Stack, edge: str, context: Any, name: str, directory: str
) -> None:
    for header in (VALUE, PREVIOUS):  # the value being replaced still passes while it is listed
        answer = call(name, directory, context, header)
        assert answer.status != 403 or answer.code != "edge_required", (name, answer.status, answer.body[:300])
        assert answer.status < 500, (name, answer.status, answer.body[:300])


def test_without_an_edge_nothing_is_asked(stack: Stack, context: Any) -> None:
    answer = call("create_sign_in_token.json", "mint_link", context, None)
    assert answer.status == 200, answer.body


@pytest.mark.parametrize(("name", "directory"), EVENTS, ids=[name for name, _ in EVENTS])
def test_a_route_served_before_the_edge_was_configured_is_guarded_after(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, name: str, directory: str
) -> None:
    """Powertools builds a route's middleware stack at its first request: the guard must be on the
    app before any route is resolved, not added when an edge first appears in the settings."""
    call(name, directory, context, None)  # the route resolved once without an edge
    secret = json.dumps({"header_value": VALUE})
    arn = str(stack.secretsmanager.create_secret(Name="edge-origin", SecretString=secret)["ARN"])
    monkeypatch.setenv("EDGE_SECRET_ID", arn)
    reset_caches()
    answer = call(name, directory, context, None)
    assert (answer.status, answer.code) == (403, "edge_required"), (name, answer.status, answer.body[:300])


@pytest.mark.parametrize(
    "secret",
    [
        "not json",
        json.dumps({}),
        json.dumps({"header_value": "short"}),
        json.dumps({"header_value": 7, "previous_header_value": PREVIOUS}),
    ],
    ids=["not-json", "empty", "short", "no-current-value"],
)
def test_an_unusable_edge_secret_is_503_not_an_open_door(
    stack: Stack, edge: str, context: Any, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    stack.secretsmanager.put_secret_value(SecretId=edge, SecretString=secret)
    reset_caches()
    with injected(monkeypatch) as aws:
        for header in (None, PREVIOUS, "short"):
            answer = call("create_sign_in_token.json", "mint_link", context, header)
            assert answer.status == 503, (header, answer.body)
    assert aws.count("dynamodb") == 0  # nothing minted, nothing read
