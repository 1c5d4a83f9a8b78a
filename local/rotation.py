"""Play Secrets Manager's part of a rotation on the in-process emulator.

In AWS, ``RotateSecret`` (called by the schedule, by rotation on creation, or by an operator)
turns rotation on, stages an empty version labelled AWSPENDING under a fresh
``ClientRequestToken``, and only then invokes the rotation function once per step. moto cannot do
that staging through its API (its ``rotate_secret`` either invokes a Lambda in Docker or, with no
function, makes the empty version AWSCURRENT), so this module does it on moto's backend directly,
which is possible because the emulator runs in this process (``local.emulator.MotoServer``, or
``moto.mock_aws`` in the tests).

``python -m local.invoke RotateKeysFunction events/rotate_ticket_keyring.json`` calls
:func:`prepare_rotation_event` first, so a rotation step runs exactly as Secrets Manager would run
it; the tests stage their rotations with :func:`begin_rotation`.

**Rotating the running stack** (``make rotate SECRET=TicketSigningKeyringSecret``, i.e. ``python -m
local.rotation TicketSigningKeyringSecret``): the stack's emulator lives in the stack's process, so the
rotation must be staged there. This command asks the running stack (``POST /_local/rotate``, a
local-only route, with the stack's secret key as Bearer token) to do what ``RotateSecret`` does:
stage the rotation (:func:`begin_rotation`, under the emulator's request lock), then invoke the
stack's ``RotateKeysFunction`` for the four steps, in its worker processes, as Secrets Manager
invokes the deployed one (:func:`rotate`). The stack's functions pick the new keyring up as
deployed ones do: when their cached copy is older than ``SecretsMaxAgeSeconds``. It prints the key
added and when it starts signing, never key material.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from local.account import ACCOUNT_ID, REGION
from local.emulator import aws_client

if TYPE_CHECKING:
    from local.runtime import LocalFunction

PENDING = "AWSPENDING"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class RotationSetupError(RuntimeError):
    """The emulator holding the secret is not in this process (or has no such secret)."""


def is_rotation_event(event: object) -> bool:
    """True for Secrets Manager's rotation invocation: ``{"SecretId", "ClientRequestToken", "Step"}``."""
    return (
        isinstance(event, Mapping)
        and isinstance(event.get("SecretId"), str)
        and isinstance(event.get("ClientRequestToken"), str)
        and event.get("Step") in STEPS
    )


def _secret(secret_id: str, account_id: str, region: str) -> Any:
    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[account_id][region]
    for secret in backend.secrets.values():
        if secret_id in (secret.name, secret.arn):
            return secret
    raise RotationSetupError(
        f"no secret {secret_id!r} in an emulator running in this process: rotation events need one "
        "(python -m local.invoke ... --fresh starts a private emulator)"
    )


def begin_rotation(
    secret_id: str,
    token: str | None = None,
    *,
    account_id: str = ACCOUNT_ID,
    region: str = REGION,
    function_name: str = "rotate-keys",
) -> str:
    """Do what ``RotateSecret`` does before it invokes the rotation function; returns the token.

    Rotation is turned on, AWSPENDING is taken off any other version and put on a new, empty
    version named ``token`` (a fresh UUID if None). A token that already names a version is left
    alone: Secrets Manager retries a rotation with the same token.
    """
    secret = _secret(secret_id, account_id, region)
    token = token or str(uuid.uuid4())
    secret.rotation_requested = secret.rotation_enabled = True
    if not secret.rotation_lambda_arn:
        secret.rotation_lambda_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
    if token not in secret.versions:
        secret.remove_version_stages_from_old_versions([PENDING])
        secret.versions[token] = {"createdate": int(time.time()), "version_id": token, "version_stages": [PENDING]}
    return token


def prepare_rotation_event(event: Mapping[str, Any]) -> None:
    """Before a rotation step is invoked locally: make sure its rotation has begun."""
    if is_rotation_event(event):
        begin_rotation(str(event["SecretId"]), str(event["ClientRequestToken"]))


def rotation_schedules(template: dict[str, Any]) -> dict[str, str]:
    """Secret logical id -> logical id of the function its ``AWS::SecretsManager::RotationSchedule``
    names (``RotationLambdaARN: !GetAtt Function.Arn``)."""
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::SecretsManager::RotationSchedule":
            continue
        props = resource.get("Properties") or {}
        secret, function = props.get("SecretId") or {}, props.get("RotationLambdaARN") or {}
        target = function.get("Fn::GetAtt") if isinstance(function, dict) else None
        if isinstance(secret, dict) and "Ref" in secret and isinstance(target, list):
            found[str(secret["Ref"])] = str(target[0])
    return found


# --- Rotating the running stack ------------------------------------------------------------------


class RotationFailed(RuntimeError):
    """A rotation step failed (the keyring stays on its current version, as in AWS)."""

    def __init__(self, step: str, error: dict[str, Any]) -> None:
        super().__init__(f"{step} failed: {error.get('errorType')}: {error.get('errorMessage')}")
        self.step = step
        self.error = error


def rotate(
    secret_arn: str,
    function: LocalFunction,
    endpoint: str,
    *,
    lock: threading.Lock | None = None,
) -> dict[str, Any]:
    """Rotate the keyring ``secret_arn`` as Secrets Manager would: stage the rotation on the
    emulator (in this process), then run ``function`` (the stack's RotateKeysFunction) on the four
    steps. Returns what changed: the version, each step's outcome, the kids before and after, the
    key added and when it activates. :class:`RotationFailed` if a step fails."""
    from local.invocation import InvocationError

    client = aws_client("secretsmanager", endpoint)
    before = _kids(client, secret_arn)
    with lock or nullcontext():  # moto's backend is mutated directly: not while a request is served
        token = begin_rotation(secret_arn, function_name=function.name)
    steps = []
    for step in STEPS:
        try:
            result = function.invoke({"SecretId": secret_arn, "ClientRequestToken": token, "Step": step})
        except InvocationError as exc:
            raise RotationFailed(step, {"errorType": exc.error_type, "errorMessage": exc.error_message}) from None
        except Exception as exc:  # an in-process function raises what the handler raised
            raise RotationFailed(step, {"errorType": type(exc).__name__, "errorMessage": str(exc)}) from None
        steps.append({"step": step, "outcome": (result or {}).get("outcome")})
    after = _kids(client, secret_arn)
    added = [key for key in after["keys"] if key["kid"] not in {old["kid"] for old in before["keys"]}]
    return {
        "version": token,
        "steps": steps,
        "kind": after["kind"],
        "kids_before": [key["kid"] for key in before["keys"]],
        "kids_after": [key["kid"] for key in after["keys"]],
        "added": added[0] if added else None,
        "signing_now": _signing(after["keys"], int(time.time())),
    }


def _kids(client: Any, secret_arn: str) -> dict[str, Any]:
    """The keyring's kind and, per key, its kid and times: never its material."""
    # Naming the stage: moto does not follow a moved AWSCURRENT label otherwise (as keyring.fetch_secret).
    data = json.loads(client.get_secret_value(SecretId=secret_arn, VersionStage="AWSCURRENT")["SecretString"])
    keys = [
        {"kid": key["kid"], "created_at": key.get("created_at"), "activates_at": key.get("activates_at")}
        for key in data.get("keys", [])
    ]
    return {"kind": data.get("kind"), "keys": keys}


def _signing(keys: list[dict[str, Any]], now: int) -> str | None:
    """The kid that signs at ``now``: the most recently activated key (keyring.py's rule)."""
    active = [key for key in keys if int(key.get("activates_at") or 0) <= now]
    if not active:
        return None
    latest = max(active, key=lambda key: (int(key.get("activates_at") or 0), int(key.get("created_at") or 0)))
    return str(latest["kid"])


def describe(secret: str, result: dict[str, Any], max_age: str | None) -> str:
    """What ``make rotate`` prints."""
    lines = [f"{secret} rotated (version {result['version']})"]
    lines += [f"  {step['step']:<13} {step['outcome']}" for step in result["steps"]]
    added = result.get("added")
    if added:
        when = int(added["activates_at"])
        stamp = time.strftime("%H:%M:%S UTC", time.gmtime(when))
        lines.append(f"  added {added['kid']}: signs from {stamp} (in {max(0, when - int(time.time()))} s)")
    lines.append(f"  keys now: {', '.join(result['kids_after'])}; signing now: {result['signing_now']}")
    if max_age:
        lines.append(f"  the stack's functions read the new keyring within SecretsMaxAgeSeconds ({max_age} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``make rotate SECRET=<keyring secret>``: rotate a keyring of the running local stack."""
    from local.state_file import running_stack

    parser = argparse.ArgumentParser(prog="python -m local.rotation", description=main.__doc__)
    parser.add_argument(
        "secret", nargs="?", default="", help="a keyring secret's logical id: TicketSigningKeyringSecret"
    )
    args = parser.parse_args(argv)
    state = running_stack()
    if state is None:
        return 2
    import httpx

    try:
        response = httpx.post(
            f"{state['url']}/_local/rotate",
            json={"secret": args.secret},
            headers={"Authorization": f"Bearer {state['secret_key']}"},
            timeout=300,
        )
    except httpx.HTTPError as exc:
        print(f"the local stack did not answer: {type(exc).__name__}", file=sys.stderr)
        return 1
    answer = response.json()
    if response.status_code != 200:
        print(f"rotation refused: {answer.get('message')}", file=sys.stderr)
        return 1
    max_age = str(state.get("parameters", {}).get("SecretsMaxAgeSeconds") or "") or None
    print(describe(answer["secret"], answer["result"], max_age or answer.get("secrets_max_age")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
