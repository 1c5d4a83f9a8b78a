"""The running local stack's state file (``.local-stack/state.json``, or ``LOCAL_STACK_STATE``): the
stack writes it once it is up and removes it on exit; the commands that work on a running stack
(``make invoke``, ``make rotate``, ``make events``, ``make screenshots``) find the stack through it."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local.template import ROOT

DEFAULT_STATE = ROOT / ".local-stack" / "state.json"


def state_path() -> Path:
    return Path(os.environ.get("LOCAL_STACK_STATE") or DEFAULT_STATE)


def write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    temporary.chmod(0o600)  # it holds the local secret key
    temporary.replace(path)


def remove_state(path: Path) -> None:
    """Remove the state file if it is this process's (another stack may have replaced it)."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def live_state(path: Path) -> dict[str, Any] | None:
    """The state of a running local stack, or ``None`` if there is none (or it is gone)."""
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(state["pid"]), 0)
        endpoint = urlsplit(str(state["moto_endpoint"]))
        with socket.create_connection((endpoint.hostname or "127.0.0.1", endpoint.port or 80), timeout=1):
            pass
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def running_stack() -> dict[str, Any] | None:
    """The state of the running local stack, for a command that needs one; ``None`` (said on stderr,
    with how to start one) if none is running."""
    state = live_state(state_path())
    if state is None:
        print(f"no local stack is running (state file {state_path()}); start one with `make local`", file=sys.stderr)
    return state
