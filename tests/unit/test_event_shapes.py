"""Every event the project hands a handler has the shape AWS sends, as Powertools' parser models it.

* each file in ``events/`` (what ``make invoke`` and ``sam local invoke`` users run, and what the
  integration tests load) validates against its source's model: payload 2.0 HTTP events against
  ``APIGatewayProxyEventV2Model`` (and name the route of ``template.yaml`` their method and path
  reach), EventBridge events against ``EventBridgeModel``;
* every HTTP event the local stack builds (``local.apigw.http_event``), for every route of
  ``template.yaml`` and for requests of any shape (hypothesis), validates against
  ``APIGatewayProxyEventV2Model``.

A model that refuses an event names the field, so a drift between the local stack, the event files
and API Gateway shows up here rather than as a handler that works locally only.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model, EventBridgeModel, SqsModel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.apigw import HttpRequest, Router, http_event
from local.event_sources import lambda_record
from local.template import http_routes

EVENTS = Path(__file__).resolve().parents[2] / "events"
EVENT_FILES = sorted(EVENTS.glob("*.json"))
ROUTES = http_routes()
ROUTER = Router(ROUTES)


def kind_of(event: dict[str, Any]) -> str:
    if event.get("version") == "2.0" and "requestContext" in event:
        return "http"
    if "detail-type" in event:
        return "eventbridge"
    if {"SecretId", "ClientRequestToken", "Step"} <= set(event):
        return "rotation"
    records = event.get("Records")
    if isinstance(records, list) and records and all(record.get("eventSource") == "aws:sqs" for record in records):
        return "sqs"
    return "unknown"


def test_the_event_files_cover_every_source() -> None:
    kinds = {path.name: kind_of(json.loads(path.read_text())) for path in EVENT_FILES}
    assert "unknown" not in kinds.values(), kinds
    assert {"http", "eventbridge", "rotation", "sqs"} <= set(kinds.values()), kinds


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda path: path.name)
def test_event_file_matches_its_sources_model(path: Path) -> None:
    event = json.loads(path.read_text())
    kind = kind_of(event)
    if kind == "http":
        parsed = APIGatewayProxyEventV2Model.model_validate(event)
        assert parsed.routeKey == parsed.requestContext.routeKey
        route_method = event["routeKey"].split(" ", 1)[0]
        assert route_method in (parsed.requestContext.http.method, "ANY")
        # A route of template.yaml, the one API Gateway (and the local stack) picks for this method and path.
        match = ROUTER.match(parsed.requestContext.http.method, parsed.rawPath)
        assert match is not None, (
            f"no route of template.yaml takes {parsed.requestContext.http.method} {parsed.rawPath}"
        )
        assert match.route_key == parsed.routeKey
    elif kind == "eventbridge":
        parsed_bridge = EventBridgeModel.model_validate(event)
        assert isinstance(parsed_bridge.detail, dict)
    elif kind == "sqs":
        parsed_sqs = SqsModel.model_validate(event)
        assert all(record.eventSource == "aws:sqs" for record in parsed_sqs.Records)
    else:
        # No Powertools model for Secrets Manager's rotation invocation: its three documented fields.
        assert event["Step"] in ("createSecret", "setSecret", "testSecret", "finishSecret")
        assert isinstance(event["SecretId"], str)
        assert event["SecretId"]
        assert isinstance(event["ClientRequestToken"], str)
        assert event["ClientRequestToken"]


def concrete_path(template_path: str, value: str) -> str:
    """A request path for a route: each ``{param}`` (or greedy ``{param+}``) filled with ``value``."""
    return re.sub(r"\{[A-Za-z0-9_.-]+\+?\}", lambda _: value, template_path)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: f"{route.method} {route.path}")
def test_the_local_stack_builds_a_valid_event_for_every_route(route: Any) -> None:
    # A catch-all (ANY, greedy) gets what no more specific route takes: another method, a deeper path.
    method = "DELETE" if route.method == "ANY" else route.method
    request = HttpRequest(
        method=method,
        target=concrete_path(route.path.replace("+}", "}/x/y"), "id_1") + "?token=a.b.c&x=1&x=2",
        headers=[("Host", "127.0.0.1:3000"), ("Cookie", "__session=a; b=2"), ("Content-Type", "application/json")],
        body=b'{"user_id": "user_1"}' if method == "POST" else b"",
    )
    match = ROUTER.match(method, request.raw_path)
    assert match is not None
    assert match.route == route
    parsed = APIGatewayProxyEventV2Model.model_validate(http_event(request, match, domain_name="127.0.0.1:3000"))
    assert parsed.routeKey == f"{route.method} {route.path}"
    assert parsed.cookies == ["__session=a", "b=2"]


header_names = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20)
header_values = st.text(st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=60)
segments = st.text(
    alphabet=st.characters(exclude_characters="/?#", exclude_categories=("Cs",)), min_size=1, max_size=20
).map(lambda text: "".join(ch if ch.isascii() and ch.isprintable() else f"%{ord(ch) % 256:02X}" for ch in text))
queries = st.lists(st.tuples(segments, st.text(max_size=10)), max_size=4).map(
    lambda pairs: "&".join(f"{key}={value}" for key, value in pairs)
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    route_index=st.integers(min_value=0, max_value=max(0, len(ROUTES) - 1)),
    segment=segments,
    query=queries,
    headers=st.lists(st.tuples(header_names, header_values), max_size=6),
    cookies=st.lists(st.tuples(header_names, header_values.filter(lambda v: ";" not in v)), max_size=3),
    body=st.binary(max_size=200),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", "", "a/b"]),
)
def test_any_request_becomes_a_valid_event(
    route_index: int,
    segment: str,
    query: str,
    headers: list[tuple[str, str]],
    cookies: list[tuple[str, str]],
    body: bytes,
    content_type: str,
) -> None:
    route = ROUTES[route_index]
    method = "GET" if route.method == "ANY" else route.method
    target = concrete_path(route.path, segment) + (f"?{query}" if query else "")
    all_headers = [*headers, ("Host", "127.0.0.1:3000")]
    if content_type:
        all_headers.append(("Content-Type", content_type))
    if cookies:
        all_headers.append(("Cookie", "; ".join(f"{name}={value}" for name, value in cookies)))
    request = HttpRequest(method=method, target=target, headers=all_headers, body=body)
    match = ROUTER.match(method, request.raw_path)
    if match is None:  # a segment that API Gateway would route elsewhere (e.g. one that decodes to a slash)
        return
    event = http_event(request, match, domain_name="127.0.0.1:3000")
    parsed = APIGatewayProxyEventV2Model.model_validate(event)
    assert parsed.rawPath == request.raw_path
    assert (parsed.body or "") == (event.get("body") or "")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.text(max_size=200),
    count=st.integers(min_value=1, max_value=10**6),
    attributes=st.dictionaries(
        header_names,
        st.fixed_dictionaries({"DataType": st.just("String"), "StringValue": st.text(max_size=20)}),
        max_size=3,
    ),
)
def test_the_local_event_source_builds_the_sqs_records_lambda_sends(
    body: str, count: int, attributes: dict[str, Any]
) -> None:
    """What ``local.event_sources`` hands a function for a message moto received (``ReceiveMessage``
    with every attribute) validates as Lambda's SQS event, message attributes included."""
    message = {
        "MessageId": "0c3b2a1e-59b1-4c24-8a6f-1d0c3b2a1e59",
        "ReceiptHandle": "AQEBreceipt==",
        "MD5OfBody": "098f6bcd4621d373cade4e832627b4f6",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": str(count), "SentTimestamp": "1717232400000",
                       "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1717232400010"},
        "MessageAttributes": attributes,
    }  # fmt: skip
    record = lambda_record(message, "arn:aws:sqs:us-east-1:123456789012:queue")
    parsed = SqsModel.model_validate({"Records": [record]})
    (parsed_record,) = parsed.Records
    assert parsed_record.body == body
    assert parsed_record.attributes.ApproximateReceiveCount == str(count)
    assert set(parsed_record.messageAttributes) == set(attributes)
