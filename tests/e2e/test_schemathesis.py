"""schemathesis against the local stack's /v1 API, driven by openapi/v1.yaml, through its pytest
integration: no 5xx, and every response conforms to the document (status codes, Content-Type,
headers, bodies), authentication is enforced, invalid input is rejected and valid input accepted.

``test_v1_operation`` runs once per operation (pytest reports each as ``[METHOD /path]``) with
schemathesis's examples, coverage and fuzzing phases; ``test_v1_workflows`` runs its stateful phase
(sequences of calls along the document's links and those schemathesis infers). Every check runs
(schemathesis's default set is all of them), ``unsupported_method`` included: an undeclared method
on a /v1 route reaches the mint function through the template's ``ANY /v1/{proxy+}`` route and is
answered 405 with ``Allow``. Its methods are those API Gateway HTTP APIs route (not schemathesis's
TRACE and QUERY, which only the local stack passes on).

Bounded: at most ``MAX_EXAMPLES`` cases per operation and phase, and ``MAX_EXAMPLES`` stateful
scenarios. The published document cannot know a deployment's redirect allow-list, so the copy used
here pins ``redirect_url`` to ``ORIGIN`` (everything else is the published text). The schema is
loaded at import (pytest collects one test per operation), before any stack runs, so these tests
start a local stack of their own (``running_stack``) that allows ``ORIGIN`` and has ``SECRET_KEY``.
A failure names the operation and the check, with a curl command that reproduces it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
import yaml

from tests.e2e.conftest import ROOT, SESSION_ENV, LocalStackHandle, running_stack

SPEC = ROOT / "openapi" / "v1.yaml"
MAX_EXAMPLES = 40
ORIGIN = "https://app.example.com"
SECRET_KEY = "sk_test_schemathesis_0001"

# An invalid request may also be too large: the API then answers 413 `request_body_too_large` (a
# documented 4xx of both operations), which schemathesis's default list of rejections lacks.
# GET /v1/sessions needs user_id OR client_id (Clerk's rule), which OpenAPI 3.0 cannot say: a request
# with neither is schema-valid and rightly answered 422 `form_param_missing` (documented); on that
# operation only, 422 counts among the accepted answers to schema-valid data.
CONFIG = """
request-timeout = 30

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[[operations]]
include-operation-id = "GetSessionList"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

[phases.coverage]
unexpected-methods = ["get", "put", "delete", "options", "patch"]
"""


def local_document() -> dict[str, Any]:
    """openapi/v1.yaml with ``redirect_url`` pinned to ``ORIGIN``, the stack's allowed origin."""
    document: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    redirect = document["components"]["schemas"]["CreateSignInTokenRequest"]["properties"]["redirect_url"]
    redirect["pattern"] = f"^({re.escape(ORIGIN)})(/[\\x21-\\x7e]*)?$"
    return document


def config(**settings: Any) -> schemathesis.Config:
    """The settings above; the key is set here (not per call) so that schemathesis knows it is the
    credential, and leaves it out where it tests that authentication is enforced."""
    return schemathesis.Config.from_dict(
        {
            **tomllib.loads(CONFIG),
            "headers": {"Authorization": f"Bearer {SECRET_KEY}"},
            "generation": {"max-examples": MAX_EXAMPLES},
            **settings,
        }
    )


@pytest.fixture(scope="module")
def v1_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    """A stack of its own: the schema is loaded at import, before any stack runs, so this stack has
    a known key and allows a known origin (and its own, as every local stack does)."""
    env = {**SESSION_ENV, "LOCAL_SECRET_KEY": SECRET_KEY, "LOCAL_PARAMETER_AllowedRedirectOrigins": ORIGIN}
    with running_stack(tmp_path_factory.mktemp("schemathesis-stack"), env=env) as stack:
        assert stack.secret_key == SECRET_KEY
        yield stack


# Loaded at import: pytest collects one test per operation. (schemathesis.pytest.from_fixture, which
# would load it from a fixture, fails on pytest 9.2: it writes Node._nodeid, which pytest no longer has.)
schema = schemathesis.openapi.from_dict(local_document(), config=config())


@schema.parametrize()
def test_v1_operation(case: Any, v1_stack: LocalStackHandle) -> None:
    case.call_and_validate(base_url=v1_stack.base_url)


def test_every_v1_operation_is_tested() -> None:
    labels = [result.ok().label for result in schema.get_all_operations()]  # .ok() raises on an invalid one
    assert len(labels) == 9, labels  # sign-in tokens (2), sessions (5), revoke every session of a user (1), JWKS (1)


def test_v1_workflows(v1_stack: LocalStackHandle) -> None:
    stateful = schemathesis.openapi.from_dict(local_document(), config=config(**{"base-url": v1_stack.base_url}))
    machine = stateful.as_state_machine()
    machine.run(settings=hypothesis.settings(machine.TestCase.settings, max_examples=MAX_EXAMPLES))


# --- Clerk's Frontend API (openapi/frontend.yaml), on the same stack ------------------------------
# No secret key (browsers call it); the client cookie is the credential schemathesis draws. A
# schema-valid sign-in carries a made-up ticket, which is rightly 400 (ticket_invalid_code); the
# handshake's and the client touch's redirect_url are pinned to ORIGIN, the stack's allowed origin.
FRONTEND_SPEC = ROOT / "openapi" / "frontend.yaml"
FRONTEND_CONFIG = """
request-timeout = 30

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[[operations]]
include-operation-id = "CreateSignIn"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

[phases.coverage]
unexpected-methods = ["get", "put", "delete", "options", "patch"]
"""


def frontend_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(FRONTEND_SPEC.read_text())
    for path in ("/v1/client/handshake", "/v1/client/touch"):
        (redirect,) = document["paths"][path]["get"]["parameters"]
        redirect["schema"]["pattern"] = f"^({re.escape(ORIGIN)})(/[\\x21-\\x7e]*)?$"
    return document


frontend_schema = schemathesis.openapi.from_dict(
    frontend_document(),
    config=schemathesis.Config.from_dict(
        {**tomllib.loads(FRONTEND_CONFIG), "generation": {"max-examples": MAX_EXAMPLES}}
    ),
)


@frontend_schema.parametrize()
def test_frontend_operation(case: Any, v1_stack: LocalStackHandle) -> None:
    case.call_and_validate(base_url=v1_stack.base_url)


def test_every_frontend_operation_is_tested() -> None:
    labels = [result.ok().label for result in frontend_schema.get_all_operations()]
    assert len(labels) == 11, labels
