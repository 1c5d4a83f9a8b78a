"""rotate_keys: the Secrets Manager rotation function of both keyrings (ticket HMAC, session RSA).

Secrets Manager calls it once per step (createSecret, setSecret, testSecret, finishSecret) with
``{"SecretId", "ClientRequestToken", "Step"}``. Thin by design: parse the event, run the step
(``signin_links.rotation.secrets_manager``), log the outcome. A failed step raises, so the invocation
fails, Secrets Manager retries it, and the RotateKeys errors alarm fires.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from signin_links import aws, snapstart
from signin_links.config import get_settings
from signin_links.observability import logger, metrics
from signin_links.rotation.policy import RotationError
from signin_links.rotation.secrets_manager import KeyringRotations, RotationStep


@cache
def keyring_rotation() -> KeyringRotations:
    return KeyringRotations(aws.client("secretsmanager"), get_settings())


@logger.inject_lambda_context(correlation_id_path="ClientRequestToken", clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    try:
        request = RotationStep.from_event(event)
        logger.append_keys(secret_id=request.secret_id, step=request.step)
        outcome = keyring_rotation().run(request)
    except RotationError as exc:
        logger.error("keyring rotation step failed", extra={"reason": str(exc)})
        metrics.add_metric(name="KeyringRotationFailures", unit="Count", value=1)
        raise
    logger.info("keyring rotation step done", extra={"outcome": outcome})
    return {"step": request.step, "outcome": outcome}


@snapstart.after_restore
def restored() -> None:
    """After a SnapStart restore: a client of the restored environment's own."""
    keyring_rotation.cache_clear()
    aws.reset_clients()
    keyring_rotation()


keyring_rotation()  # the client, created in Lambda's init phase
