"""`make invoke FUNCTION=RotateKeysFunction EVENT=events/rotate_*.json`: a rotation step run locally.

``local.invoke`` runs a rotation event on a private emulator, maps the event's logical secret id to
the local secret, and stages the rotation as ``RotateSecret`` would (``local.rotation``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("event", "kind"), [("rotate_ticket_keyring.json", "ed25519"), ("rotate_session_keyring.json", "rsa")]
)
def test_make_invoke_runs_the_create_step_of_a_rotation(event: str, kind: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCAL_STACK"))}
    env["LOCAL_STACK_STATE"] = str(ROOT / ".local-stack" / "no-such-state.json")  # never a running stack
    result = subprocess.run(
        [sys.executable, "-m", "local.invoke", "RotateKeysFunction", f"events/{event}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert answer["step"] == "createSecret"
    assert answer["outcome"].startswith(f"added {kind}-")
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith('{"level"')]
    created = next(line for line in logged if line["message"] == "pending keyring created")
    assert created["correlation_id"] == json.loads((ROOT / "events" / event).read_text())["ClientRequestToken"]
