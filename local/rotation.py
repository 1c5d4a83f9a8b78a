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
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from local.emulator import REGION
from local.template import ACCOUNT_ID

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
