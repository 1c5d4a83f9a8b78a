"""The requests the benchmarks send to each handler, and the Lambda-like process they run in.

Environment variables come from ``template.yaml`` (Globals + the function's own), resolved with
``local.intrinsics`` the way the local stack does it, resource names replaced by fixed fakes; plus what
the Lambda runtime itself sets (``LAMBDA_TASK_ROOT`` and friends, so Powertools' Tracer is active as
in a deployed function with ``Tracing: Active``).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ROOT
from bench._envs import FunctionEnv
from local.account import ACCOUNT_ID, REGION

API_KEY = "sk_test_bench_0123456789abcdef"
REDIRECT = "https://app.example.com/welcome"
FUNCTIONS = {"mint_link": "MintLinkFunction", "accept_token": "AcceptTokenFunction"}
CHILD = ROOT / "bench" / "_lambda_child.py"
FAKE_AWS = ROOT / "bench" / "_fake_aws.py"


def secret_arn(logical_id: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{logical_id}-bench"


def template_env(logical_id: str) -> dict[str, str]:
    from local.intrinsics import LOCAL_DEPLOY, Resolver, parameter_values
    from local.template import function_environment, functions, load_template

    template = load_template()
    kinds = {name: resource["Type"] for name, resource in template["Resources"].items()}

    def ref_of(name: str) -> str | None:
        if name not in kinds:
            return None
        return secret_arn(name) if kinds[name] == "AWS::SecretsManager::Secret" else f"{name}-bench"

    def att_of(name: str, attr: str) -> str | None:
        return f"arn:aws:bench:{REGION}:{ACCOUNT_ID}:{name}/{attr}" if name in kinds else None

    overrides = {
        **LOCAL_DEPLOY,
        "AllowedRedirectOrigins": "https://app.example.com",
        "AcceptBaseUrl": "https://links.example.com",
    }
    known = set(template.get("Parameters") or {})
    resolver = Resolver(
        template, parameter_values(template, {k: v for k, v in overrides.items() if k in known}), ref_of, att_of
    )
    return function_environment(functions(template)[logical_id], resolver)


def lambda_runtime_env(function_dir: Path) -> dict[str, str]:
    """What the Lambda runtime sets (credentials as environment variables, as on Lambda)."""
    return {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "AKIABENCHBENCHBENCH0",
        "AWS_SECRET_ACCESS_KEY": "bench-secret-access-key-bench-bench-0000",
        "AWS_SESSION_TOKEN": "bench-session-token",
        "AWS_LAMBDA_FUNCTION_NAME": "bench-function",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": str(function_dir),
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "LANG": "C.UTF-8",
        "PATH": "/usr/bin:/bin",
        "TZ": ":UTC",
    }


@dataclass
class Scenario:
    """One handler, one request: what the child process needs."""

    function: str
    event: dict[str, Any]
    secrets: dict[str, str]
    items: dict[str, Any] = field(default_factory=dict)
    floor: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)


def _event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "events" / name).read_text())
    return data


def _keyrings() -> tuple[str, str, str]:
    """The ticket signing keyring, its verification keyring (public keys) and the session keyring."""
    from signin_links.keyring import new_keyring_json, new_ticket_keyrings_json

    signing, public = new_ticket_keyrings_json()
    return signing, public, new_keyring_json("rsa")


def mint_scenario() -> Scenario:
    from signin_links.keyring import parse_keyring

    ticket_ring, _, _ = _keyrings()
    env = template_env(FUNCTIONS["mint_link"])
    event = _event("create_sign_in_token.json")
    event["headers"]["authorization"] = f"Bearer {API_KEY}"
    event["body"] = json.dumps({"user_id": "user_bench", "redirect_url": REDIRECT})
    key = parse_keyring(ticket_ring, "ed25519").keys[0]
    now = int(time.time())
    return Scenario(
        function="mint_link",
        event=event,
        secrets={
            env["API_KEYS_SECRET_ID"]: json.dumps({"secret_key": API_KEY}),
            env["TICKET_SIGNING_KEYRING_SECRET_ID"]: ticket_ring,
        },
        floor={
            "kind": "mint",
            "ticket_seed": key.seed.hex(),
            "claims": {
                "eis": 2592000,
                "exp": now + 2592000,
                "iat": now,
                "sid": "sit_" + "A" * 22,
                "st": "sign_in_token",
                "rdr": REDIRECT,
                "uid": "user_bench",
            },
        },
        env=env,
    )


def accept_scenario() -> Scenario:
    from signin_links.keyring import parse_keyring
    from signin_links.models import SignInTokenRecord, TokenStatus
    from signin_links.store import to_item
    from signin_links.tickets import sign_ticket

    ticket_ring, public_ring, session_ring = _keyrings()
    env = template_env(FUNCTIONS["accept_token"])
    ticket_key = parse_keyring(ticket_ring, "ed25519").keys[0]
    session_key = parse_keyring(session_ring, "rsa").keys[0]
    now = int(time.time())
    sid = "sit_" + "B" * 22
    token = sign_ticket(
        ticket_key, sid=sid, issued_at=now, expires_in_seconds=2592000, redirect_url=REDIRECT, user_id="user_bench"
    )
    record = SignInTokenRecord(
        id=sid, user_id="user_bench", status=TokenStatus.PENDING, created_at=now * 1000, updated_at=now * 1000,
        expires_at=now + 2592000, expires_in_seconds=2592000, redirect_url=REDIRECT,
    )  # fmt: skip
    event = _event("accept_token_post.json")
    event["body"] = f"token={token}"
    secrets = {
        env["TICKET_VERIFICATION_KEYRING_SECRET_ID"]: public_ring,  # the accept reads public keys only
        env["SESSION_KEYRING_SECRET_ID"]: session_ring,
    }
    if env.get("API_KEYS_SECRET_ID"):
        secrets[env["API_KEYS_SECRET_ID"]] = json.dumps({"secret_key": API_KEY})
    return Scenario(
        function="accept_token",
        event=event,
        secrets=secrets,
        items={sid: to_item(record, now + 2592000 + 7 * 86400)},
        floor={
            "kind": "accept",
            "ticket_seed": ticket_key.seed.hex(),
            "claims": {
                "eis": 2592000,
                "exp": now + 2592000,
                "iat": now,
                "sid": sid,
                "st": "sign_in_token",
                "rdr": REDIRECT,
                "uid": "user_bench",
            },
            "session_key_pem": session_key.private_key_pem,
            "session_claims": {
                "sub": "user_bench",
                "sid": "sess_" + "C" * 22,
                "iat": now,
                "nbf": now - 10,
                "exp": now + 60,
                "iss": "https://links.example.com",
                "v": 2,
                "sts": "active",
                "azp": "https://app.example.com",
            },
        },
        env=env,
    )


SCENARIOS = {"mint_link": mint_scenario, "accept_token": accept_scenario}
# The floor of each function (bench/floors/<kind>/app.py): run on the function's own scenario.
FLOORS = {"mint_link": "mint", "accept_token": "accept"}


def run_child(
    environment: FunctionEnv,
    spec: dict[str, Any],
    env: dict[str, str],
    *,
    timeout: float = 300,
) -> dict[str, Any]:
    """One fresh ``python -S -s`` process (``environment.python``; ``-B`` when it is read-only);
    returns its ``BENCH_RESULT``."""
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        spec_path = Path(workdir) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        child_env = {**env, "PYTHONPATH": environment.pythonpath, "PYTHONHASHSEED": "0"}
        if environment.read_only:
            child_env["PYTHONDONTWRITEBYTECODE"] = "1"
        flags = ["-S", "-s"] + (["-B"] if environment.read_only else [])
        completed = subprocess.run(
            [environment.python, *flags, "-c", CHILD.read_text(), str(spec_path)],
            cwd=workdir,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr or completed.stdout)[-2000:]
        raise RuntimeError(f"benchmark child failed ({completed.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    return result


def handler_spec(scenario: Scenario, *, warm: int = 0) -> dict[str, Any]:
    return {
        "mode": "handler",
        "fake_aws": str(FAKE_AWS),
        "function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:bench-function",
        "secrets": scenario.secrets,
        "items": scenario.items,
        "event": scenario.event,
        "warm": warm,
        "floor": scenario.floor if warm else None,
    }


def child_env(scenario: Scenario, environment: FunctionEnv) -> dict[str, str]:
    return {**lambda_runtime_env(environment.task_root), **scenario.env}
