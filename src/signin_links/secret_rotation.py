"""Secrets Manager's four-step rotation protocol for keyring secrets (HMAC and RSA alike).

Secrets Manager invokes the rotation function once per step with ``{"SecretId",
"ClientRequestToken", "Step"}``; the token is the id of the new secret version. Every step is
idempotent, so a retried or repeated step changes nothing further:

* ``createSecret``: unless the AWSPENDING version of this token already holds a value, read
  AWSCURRENT, drop expired keys, add a key (:func:`signin_links.rotation.rotate`) and store the
  result as the AWSPENDING version of the token.
* ``setSecret``: the keyring lives only in the secret; nothing to set elsewhere.
* ``testSecret``: the pending keyring must be usable (:func:`signin_links.rotation.check_keyring`)
  and keep every key of AWSCURRENT that is still within retention.
* ``finishSecret``: move AWSCURRENT to the token's version (no-op when already there).

The keyring's kind comes from the secret itself, so one function rotates both keyrings. The
Secrets Manager client is passed in (``signin_links.aws`` in Lambda, moto in the tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from signin_links.config import Settings
from signin_links.keyring import Key, Keyring, KeyringFormatError, read_keys
from signin_links.observability import logger, metrics
from signin_links.rotation import RotationError, RotationPolicy, check_keyring, prune, rotate

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


@dataclass(frozen=True)
class RotationStep:
    secret_id: str
    token: str  # ClientRequestToken: the id of the version being created
    step: str

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> RotationStep:
        """The step of a Secrets Manager rotation event; anything else is refused."""
        secret_id, token, step = event.get("SecretId"), event.get("ClientRequestToken"), event.get("Step")
        if not isinstance(secret_id, str) or not secret_id:
            raise RotationError("the event has no SecretId")
        if not isinstance(token, str) or not token:
            raise RotationError("the event has no ClientRequestToken")
        if step not in STEPS:
            raise RotationError(f"unknown rotation step {step!r}")
        return cls(secret_id=secret_id, token=token, step=str(step))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class KeyringRotations:
    """Runs one step of a keyring secret's rotation."""

    def __init__(self, client: Any, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock

    def run(self, request: RotationStep) -> str:
        """Run the step; returns what it did (for the log). Raises RotationError if it cannot."""
        if self._already_current(request):
            return "already current"
        handlers: dict[str, Callable[[RotationStep], str]] = {
            "createSecret": self.create_secret,
            "setSecret": self.set_secret,
            "testSecret": self.test_secret,
            "finishSecret": self.finish_secret,
        }
        return handlers[request.step](request)

    # -- the four steps ---------------------------------------------------------------------------

    def create_secret(self, request: RotationStep) -> str:
        current = self._value(request.secret_id, stage=CURRENT)
        if self._pending_value(request) is not None:
            return "pending version already created"
        kind, keys = self._read(current, "AWSCURRENT")
        now = int(self.clock())
        policy = RotationPolicy.for_kind(kind, self.settings)
        new_keys, added = rotate(kind, keys, now=now, policy=policy)
        dropped = sorted({key.kid for key in keys} - {key.kid for key in new_keys})
        try:
            self.client.put_secret_value(
                SecretId=request.secret_id,
                ClientRequestToken=request.token,
                SecretString=Keyring(kind=kind, keys=new_keys).to_json(),
                VersionStages=[PENDING],
            )
        except ClientError as exc:
            # A concurrent run of this step stored its own value first: that one stands.
            if _error_code(exc) != "ResourceExistsException":
                raise
            logger.info("pending version stored concurrently", extra={"version_id": request.token})
            return "pending version already created"
        logger.info(
            "pending keyring created",
            extra={
                "keyring_kind": kind,
                "added_kid": added.kid,
                "activates_at": added.activates_at,
                "dropped_kids": dropped,
                "kept_kids": [key.kid for key in new_keys if key is not added],
            },
        )
        return f"added {added.kid}"

    def set_secret(self, request: RotationStep) -> str:
        # The keyring is used straight from the secret: there is no other system to update.
        return "nothing to set"

    def test_secret(self, request: RotationStep) -> str:
        pending = self._pending_value(request)
        if pending is None:
            raise RotationError("testSecret: the pending version holds no value (createSecret has not run)")
        kind, keys = self._read(pending, "AWSPENDING")
        current_kind, current_keys = self._read(self._value(request.secret_id, stage=CURRENT), "AWSCURRENT")
        if kind != current_kind:
            raise RotationError(f"testSecret: pending keyring is {kind}, current keyring is {current_kind}")
        now = int(self.clock())
        policy = RotationPolicy.for_kind(kind, self.settings)
        needed = [key.kid for key in prune(current_keys, now, policy.retention)]
        check_keyring(kind, keys, required_kids=needed, now=now)
        return f"pending keyring valid ({len(keys)} keys)"

    def finish_secret(self, request: RotationStep) -> str:
        versions = self._describe(request.secret_id)["VersionIdsToStages"]
        current = next((version for version, stages in versions.items() if CURRENT in stages), None)
        if current == request.token:
            return "already current"
        kwargs = {"RemoveFromVersionId": current} if current else {}
        self.client.update_secret_version_stage(
            SecretId=request.secret_id, VersionStage=CURRENT, MoveToVersionId=request.token, **kwargs
        )
        metrics.add_metric(name="KeyringRotations", unit="Count", value=1)
        logger.info("keyring rotation finished", extra={"previous_version_id": current})
        return "moved AWSCURRENT"

    # -- helpers ----------------------------------------------------------------------------------

    def _describe(self, secret_id: str) -> dict[str, Any]:
        description: dict[str, Any] = self.client.describe_secret(SecretId=secret_id)
        return description

    def _already_current(self, request: RotationStep) -> bool:
        """Check the secret is being rotated with this token, as Secrets Manager's own templates do.

        True when the token's version is already AWSCURRENT: the rotation is complete, every step
        is then a no-op.
        """
        description = self._describe(request.secret_id)
        if not description.get("RotationEnabled"):
            raise RotationError("rotation is not enabled for this secret")
        versions: dict[str, list[str]] = description.get("VersionIdsToStages") or {}
        stages = versions.get(request.token)
        if stages is None:
            raise RotationError("the secret has no version for this ClientRequestToken")
        if CURRENT in stages:
            logger.info("version is already AWSCURRENT", extra={"step": request.step})
            return True
        if PENDING not in stages:
            raise RotationError("the version of this ClientRequestToken is not AWSPENDING")
        return False

    def _value(self, secret_id: str, *, stage: str, version_id: str | None = None) -> str:
        kwargs = {"VersionId": version_id} if version_id else {}
        response = self.client.get_secret_value(SecretId=secret_id, VersionStage=stage, **kwargs)
        value = response.get("SecretString")
        if not isinstance(value, str):
            raise RotationError(f"the {stage} version holds no SecretString")
        return value

    def _pending_value(self, request: RotationStep) -> str | None:
        try:
            return self._value(request.secret_id, stage=PENDING, version_id=request.token)
        except ClientError as exc:
            # A version staged by RotateSecret but not written yet: ResourceNotFoundException.
            if _error_code(exc) == "ResourceNotFoundException":
                return None
            raise

    @staticmethod
    def _read(raw: str, label: str) -> tuple[str, tuple[Key, ...]]:
        try:
            return read_keys(raw)
        except KeyringFormatError as exc:
            raise RotationError(f"the {label} keyring is malformed: {exc}") from None
