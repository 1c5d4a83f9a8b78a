"""The first request's work at init: loading a handler module creates its clients, reads its secrets
and parses its keys, so the first request reads nothing; a Secrets Manager failure at init leaves the
function usable; and after a SnapStart restore nothing cached before the snapshot is reused."""

from __future__ import annotations

import json
import random
from types import ModuleType
from typing import Any

import pytest

from signin_links import aws, snapstart
from tests.conftest import Stack, load_event, reset_caches
from tests.handlers import mint
from tests.integration.conftest import fresh_handler
from tests.robustness.faults import SECRETS_FAULTS, injected


def mint_with(module: ModuleType, context: Any) -> dict[str, Any]:
    event = load_event("create_sign_in_token.json")
    answer = module.lambda_handler(event, context)
    assert answer["statusCode"] == 200, answer
    return answer


@pytest.mark.parametrize("directory", ["mint_link", "accept_token"])
def test_loading_a_handler_reads_its_secrets_so_the_first_request_reads_none(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, hooks: None, directory: str
) -> None:
    reset_caches()
    with injected(monkeypatch) as faults:
        module = fresh_handler(directory)
        at_init = faults.count("secretsmanager", "GetSecretValue")
        faults.calls.clear()
        if directory == "mint_link":
            mint_with(module, context)
        else:
            token = mint(context)["token"]
            faults.calls.clear()
            event = load_event("accept_token_post.json")
            event["body"] = f"token={token}"
            assert module.lambda_handler(event, context)["statusCode"] == 200
        first_request = [(service, operation) for service, operation, _ in faults.calls]
    assert at_init == 2  # mint: API keys + ticket keyring; accept: ticket + session keyrings
    assert ("secretsmanager", "GetSecretValue") not in first_request
    assert len([call for call in first_request if call[0] == "dynamodb"]) == 1


@pytest.mark.parametrize("behind_cloudfront", [False, True])
def test_no_cold_start_reads_ssm_and_an_http_mint_reads_it_only_behind_cloudfront(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, hooks: None, behind_cloudfront: bool
) -> None:
    """A storm of cold starts must not meet SSM's GetParameter quota (40/s per account): init reads
    nothing from SSM. Without AcceptBaseUrl the stack publishes the API's own URL, which is the
    request's host, so an HTTP mint reads it only behind CloudFront, then keeps it (an hour)."""
    import boto3

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/stack/accept-base-url", Value="https://d111.cloudfront.net", Type="String"
    )
    monkeypatch.setenv("ACCEPT_BASE_URL", "")
    monkeypatch.setenv("ACCEPT_BASE_URL_PARAMETER", "/stack/accept-base-url")
    monkeypatch.setenv("LINKS_BEHIND_CLOUDFRONT", "true" if behind_cloudfront else "false")
    reset_caches()
    with injected(monkeypatch) as faults:
        module = fresh_handler("mint_link")
        assert faults.count("ssm") == 0
        urls = [json.loads(mint_with(module, context)["body"])["url"] for _ in range(3)]
        assert faults.count("ssm", "GetParameter") == (1 if behind_cloudfront else 0)
    host = (
        "d111.cloudfront.net"
        if behind_cloudfront
        else load_event("create_sign_in_token.json")["requestContext"]["domainName"]
    )
    assert all(url.startswith(f"https://{host}/accept-token?token=") for url in urls), urls


@pytest.mark.parametrize("fault", SECRETS_FAULTS.values(), ids=SECRETS_FAULTS.keys())
def test_a_secrets_manager_failure_at_init_leaves_the_function_usable(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, hooks: None, fault: Any
) -> None:
    reset_caches()
    with injected(monkeypatch) as faults:
        faults.fail("secretsmanager", "GetSecretValue", fault)
        module = fresh_handler("mint_link")  # does not raise: an init that raised would fail the request
        assert faults.failed
        faults.clear()
        faults.calls.clear()
        mint_with(module, context)  # the first request reads what init could not
        assert faults.count("secretsmanager", "GetSecretValue") == 2


def test_after_a_snapstart_restore_nothing_from_the_snapshot_is_reused(
    stack: Stack, context: Any, monkeypatch: pytest.MonkeyPatch, hooks: None
) -> None:
    reset_caches()
    module = fresh_handler("mint_link")
    client_before = aws.client("dynamodb")
    service_before = module.sign_in_tokens()
    draws = []
    for _ in range(2):  # two environments restored from one snapshot: the same random state
        random.seed(1234)
        with injected(monkeypatch) as faults:
            snapstart.restored()
            reread = faults.count("secretsmanager", "GetSecretValue")
        draws.append(random.random())
        assert reread == 2, "secrets not re-read after the restore"
    assert draws[0] != draws[1], "the restored environments share their random state"
    assert aws.client("dynamodb") is not client_before
    assert module.sign_in_tokens() is not service_before
    with injected(monkeypatch) as faults:
        mint_with(module, context)
        assert faults.count("secretsmanager") == 0, "the restore did not warm the function up again"


def test_the_runtime_s_hook_library_is_used_only_for_a_snapshot_init(monkeypatch: pytest.MonkeyPatch) -> None:
    with snapstart.HOOKS.isolated():
        monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
        snapstart.after_restore(lambda: None)  # no snapshot_restore_py here, and none needed
        monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
        with pytest.raises(ModuleNotFoundError, match="snapshot_restore_py"):
            snapstart.after_restore(lambda: None)
