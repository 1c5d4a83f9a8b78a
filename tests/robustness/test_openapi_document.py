"""openapi/v1.yaml is a valid OpenAPI 3 document that says what the /v1 API really does.

Hand-written (see its header for why), so these tests keep it honest without the local stack:
its routes are template.yaml's /v1 routes, its error codes are the ErrorCode table's, and real
responses of the mint handler (on moto), successes, every kind of rejection and a 503 under fault
injection, match the status codes, headers and schemas it declares. The e2e schemathesis test
then fuzzes the local stack with it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from local.template import http_routes
from signin_links.errors import ErrorCode
from tests.conftest import ROOT, Stack, load_event
from tests.handlers import invoke, revoke_event
from tests.robustness.faults import DYNAMODB_FAULTS, injected

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

SPEC_PATH = ROOT / "openapi" / "v1.yaml"
SPEC: dict[str, Any] = yaml.safe_load(Path(SPEC_PATH).read_text())
REGISTRY = Registry().with_resource("urn:v1", Resource.from_contents(SPEC, default_specification=DRAFT4))
ACCEPT_ONLY_CODES = {
    "ticket_invalid_code",
    "ticket_expired_code",
    "sign_in_token_already_used_code",
    "sign_in_token_revoked_code",
    "method_not_allowed",
    "origin_invalid",  # login CSRF: the browser routes that use cookies, not /v1
    "another_user_signed_in",
    # Clerk's Frontend API (functions/clerk_frontend, for browsers): not the Backend API's.
    "session_exists",
    "strategy_for_user_invalid",
}


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref`` pointers (``#/components/...``)."""
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def errors_of(instance: Any, schema: dict[str, Any]) -> list[str]:
    ref = schema["$ref"].replace("#/", "urn:v1#/") if "$ref" in schema else None
    validator = OAS30Validator({"$ref": ref} if ref else schema, registry=REGISTRY)
    return [f"{'/'.join(map(str, error.path))}: {error.message}" for error in validator.iter_errors(instance)]


def check_against_spec(path: str, status: int, headers: dict[str, str], body: str) -> None:
    operation = SPEC["paths"][path]["post"]
    assert str(status) in operation["responses"], f"{path}: status {status} is not documented"
    response = resolve(operation["responses"][str(status)])
    assert headers.get("Content-Type") == "application/json"
    for name, declared in (response.get("headers") or {}).items():
        header = resolve(declared)
        value = headers.get(name)
        if header.get("required"):
            assert value is not None, f"{path} {status}: header {name} missing"
        if value is not None:
            typed: Any = int(value) if header["schema"]["type"] == "integer" else value
            assert not errors_of(typed, header["schema"]), (name, value)
    schema = response["content"]["application/json"]["schema"]
    problems = errors_of(json.loads(body), schema)
    assert not problems, f"{path} {status}: {problems}"


def test_the_document_is_valid_openapi() -> None:
    validate_spec(SPEC)
    assert SPEC["openapi"].startswith("3.")


# Not operations: the catch-alls that answer 404 / 405 in the envelope (with Cache-Control: no-store).
V1_FALLBACKS = {
    ("ANY", "/v1/{proxy+}"),
    ("ANY", "/v1/sessions/{proxy+}"),
    ("ANY", "/v1/sessions"),
    ("ANY", "/v1/jwks"),
}


def test_its_routes_are_the_templates_v1_routes() -> None:
    # Clerk's Frontend API shares the /v1 prefix (another host at Clerk) but is not the Backend API:
    # its routes are ClerkFrontendFunction's, all but /v1/jwks, which is both.
    template_routes = {
        (route.method, route.path)
        for route in http_routes()
        if route.path.startswith("/v1/") and (route.function != "ClerkFrontendFunction" or route.path == "/v1/jwks")
    }
    assert template_routes >= V1_FALLBACKS
    template_routes -= V1_FALLBACKS
    document_routes = {(method.upper(), path) for path, item in SPEC["paths"].items() for method in item}
    assert document_routes == template_routes


def test_its_error_codes_are_the_error_tables() -> None:
    documented = set(SPEC["components"]["schemas"]["ClerkError"]["properties"]["code"]["enum"])
    table = {code.wire_code for code in ErrorCode}
    assert documented <= table, documented - table
    assert {code for code in table if code not in ACCEPT_ONLY_CODES} <= documented | {"internal_clerk_error"}


def create(context: Any, body: str, **headers: str) -> tuple[int, dict[str, str], str]:
    event = load_event("create_sign_in_token.json")
    event["body"] = body
    event["headers"].update(headers)
    answer = invoke("mint_link", event, context)
    return answer.status, answer.headers, answer.body


CREATE = "/v1/sign_in_tokens"
REVOKE = "/v1/sign_in_tokens/{sign_in_token_id}/revoke"


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ('{"user_id": "user_1"}', {}, 200),
        ('{"user_id": "u", "expires_in_seconds": null, "org_id": "org_1"}', {}, 200),
        ('{"user_id": "u", "redirect_url": "https://app.example.com/x"}', {}, 200),
        ("{nope", {}, 400),
        ("[]", {}, 400),
        ('{"user_id": "u"}', {"authorization": "Basic x"}, 401),
        ('{"user_id": "u"}', {"authorization": "Bearer sk_test_not_the_key_000000"}, 401),
        ('{"user_id": "' + "x" * 17000 + '"}', {}, 413),
        ("{}", {}, 422),
        ('{"user_id": " "}', {}, 422),
        ('{"user_id": "u", "expires_in_seconds": 0}', {}, 422),
        ('{"user_id": "u", "extra": 1}', {}, 422),
        ('{"user_id": "u", "redirect_url": "https://evil.example"}', {}, 422),
    ],
)
def test_create_responses_match_the_document(
    stack: Stack, context: Any, body: str, headers: dict[str, str], status: int
) -> None:
    got, response_headers, response_body = create(context, body, **headers)
    assert got == status, response_body
    check_against_spec(CREATE, got, response_headers, response_body)


def test_revoke_responses_match_the_document(stack: Stack, context: Any) -> None:
    _, _, created = create(context, '{"user_id": "user_1"}')
    token_id = json.loads(created)["id"]
    for expected, event in (
        (200, revoke_event(token_id)),
        (400, revoke_event(token_id)),  # already revoked
        (404, revoke_event("sit_0000000000000000000000")),
        (404, revoke_event("not-an-id")),
    ):
        answer = invoke("mint_link", event, context)
        assert answer.status == expected, answer.body
        check_against_spec(REVOKE, answer.status, answer.headers, answer.body)
    event = revoke_event(token_id)
    event["body"] = "[1]"
    answer = invoke("mint_link", event, context)
    assert answer.status == 400
    check_against_spec(REVOKE, answer.status, answer.headers, answer.body)


def test_a_503_matches_the_document(stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with injected(monkeypatch) as faults:
        faults.fail("dynamodb", None, DYNAMODB_FAULTS["ThrottlingException"])
        status, headers, body = create(context, '{"user_id": "user_1"}')
        assert status == 503
        check_against_spec(CREATE, status, headers, body)
        answer = invoke("mint_link", revoke_event("sit_0000000000000000000000"), context)
        assert answer.status == 503
        check_against_spec(REVOKE, answer.status, answer.headers, answer.body)


# --- Clerk's Frontend API: openapi/frontend.yaml ------------------------------------------------------

FRONTEND_SPEC: dict[str, Any] = yaml.safe_load((ROOT / "openapi" / "frontend.yaml").read_text())


def test_the_frontend_document_is_valid_openapi_with_the_functions_operations(stack: Stack) -> None:
    """Its operations are exactly the paths and methods functions/clerk_frontend answers, and the
    template routes each of them to ClerkFrontendFunction (``stack``: the handler initialises on import)."""
    from local.apigw import Router
    from tests.conftest import load_function

    validate_spec(FRONTEND_SPEC)
    documented = {(method.upper(), path) for path, item in FRONTEND_SPEC["paths"].items() for method in item}
    paths = load_function("clerk_frontend").FRONTEND_PATHS
    served = {(method, re.sub(r"<(\w+)>", r"{\1}", path)) for path, methods in paths.items() for method in methods}
    assert documented == served
    router = Router(http_routes())
    for method, path in documented:
        match = router.match(method, path.replace("{session_id}", "sess_0000000000000000000000"))
        assert match is not None, (method, path)
        assert match.route.function == "ClerkFrontendFunction", (method, path)


def test_the_frontend_documents_error_codes_are_the_error_tables() -> None:
    documented = set(
        FRONTEND_SPEC["components"]["schemas"]["ErrorEnvelope"]["properties"]["errors"]["items"]["properties"]["code"][
            "enum"
        ]
    )
    assert documented <= {code.wire_code for code in ErrorCode}
    assert {"session_exists", "strategy_for_user_invalid", "authentication_invalid", "origin_invalid"} <= documented
