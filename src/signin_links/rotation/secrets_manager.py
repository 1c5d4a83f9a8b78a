"""Secrets Manager's four-step rotation protocol for keyring secrets (Ed25519 and RSA alike).

Secrets Manager invokes the rotation function once per step with ``{"SecretId",
"ClientRequestToken", "Step"}``; the token is the id of the new secret version. Every step is
idempotent, so a retried or repeated step changes nothing further:

* ``createSecret``: unless the AWSPENDING version of this token already holds a value, read
  AWSCURRENT, drop expired keys, add a key (:func:`signin_links.rotation.policy.rotate`) and store the
  result as the AWSPENDING version of the token.
* ``setSecret``: for the ticket signing keyring (``ed25519``), publish the pending keyring's public
  half as the current value of the ticket verification keyring (``TICKET_VERIFICATION_KEYRING_SECRET_ID``),
  the only keyring the accept and the email function read. This happens before ``finishSecret``
  makes the new key visible to the mint, and the key signs only after the activation delay, so
  every verifier knows a key before a token it signed reaches it. The session keyring lives only
  in its secret: nothing to set.
* ``testSecret``: the pending keyring must be usable (:func:`signin_links.rotation.policy.check_keyring`)
  and keep every key of AWSCURRENT that is still within retention; for the ticket signing keyring,
  the published verification keyring must hold exactly its public half.
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
from signin_links.keyring import ED25519, ED25519_PUBLIC, Key, Keyring, KeyringFormatError, read_keys
from signin_links.observability import logger, metrics
from signin_links.rotation.policy import RotationError, RotationPolicy, check_keyring, prune, rotate

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
        """Run the step; returns what it did (for the log).

        Raises:
            RotationError: the secret is not being rotated with this token, or the step cannot be
                done (the message says why; Secrets Manager then retries the rotation).
            botocore.exceptions.ClientError: a Secrets Manager call failed (the step is retried).
        """
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
        """Store the rotated keyring as the pending version (once: a concurrent copy's stands).

        Raises:
            RotationError: the current keyring is malformed, or the timing settings would let a key
                sign before every function has read it (``policy.check_timing``).
            botocore.exceptions.ClientError: a Secrets Manager call failed.
        """
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
        """Publish the pending ticket keyring's public half as the verification keyring (Ed25519);
        nothing for the session keyring, which is read straight from its secret.

        Raises:
            RotationError: no pending value, or a malformed pending or verification keyring.
            botocore.exceptions.ClientError: a Secrets Manager call failed.
        """
        pending = self._pending_value(request)
        if pending is None:
            raise RotationError("setSecret: the pending version holds no value (createSecret has not run)")
        kind, keys = self._read(pending, "AWSPENDING")
        if kind != ED25519:
            return "nothing to set"  # the session keyring is used straight from its secret
        public = Keyring(kind=kind, keys=keys).public()
        target = self._verification_secret()
        if self._published(target) == _public_keys(public.keys):
            return "verification keyring already published"
        # A new version each time it differs (checked just above): a retried setSecret that finds it
        # published writes nothing, and one that finds it changed since writes the true one again.
        self.client.put_secret_value(SecretId=target, SecretString=public.to_json())
        logger.info("verification keyring published", extra={"kids": list(public.kids)})
        return f"published {len(public.keys)} public keys"

    def test_secret(self, request: RotationStep) -> str:
        """Check the pending keyring: same kind, every key still needed, keys that load and sign and
        verify, and (Ed25519) a published verification keyring that is its public half.

        Raises:
            RotationError: any of those checks fails (the message names the key and the check).
            botocore.exceptions.ClientError: a Secrets Manager call failed.
        """
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
        if kind == ED25519 and self._published(self._verification_secret()) != _public_keys(keys):
            raise RotationError("testSecret: the verification keyring is not the pending keyring's public half")
        return f"pending keyring valid ({len(keys)} keys)"

    def finish_secret(self, request: RotationStep) -> str:
        """Move ``AWSCURRENT`` to the pending version (nothing when it is there already).

        Raises:
            botocore.exceptions.ClientError: a Secrets Manager call failed.
        """
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

    def _verification_secret(self) -> str:
        target = self.settings.ticket_verification_keyring_secret_id
        if not target:
            raise RotationError("TICKET_VERIFICATION_KEYRING_SECRET_ID is not set: nowhere to publish the public keys")
        return target

    def _published(self, secret_id: str) -> dict[str, tuple[int, int, bytes]]:
        """The keys of the verification keyring as it stands (AWSCURRENT)."""
        kind, keys = self._read(self._value(secret_id, stage=CURRENT), "verification")
        if kind != ED25519_PUBLIC:
            raise RotationError(f"the verification keyring is {kind}, not {ED25519_PUBLIC}")
        return _public_keys(keys)

    @staticmethod
    def _read(raw: str, label: str) -> tuple[str, tuple[Key, ...]]:
        try:
            return read_keys(raw)
        except KeyringFormatError as exc:
            raise RotationError(f"the {label} keyring is malformed: {exc}") from None


def _public_keys(keys: tuple[Key, ...]) -> dict[str, tuple[int, int, bytes]]:
    """What a verification keyring must say of each key: its times and its public half, by kid."""
    return {key.kid: (key.created_at, key.activates_at, key.public) for key in keys}
