"""Run one function once on an event file, like ``sam local invoke``, without Docker.

    python -m local.invoke <LogicalId> <event.json | -> [--fresh]
    make invoke FUNCTION=MintLinkFunction EVENT=events/create_sign_in_token.json

Where the AWS resources come from:

* a running local stack (``make local``), if ``.local-stack/state.json`` (or ``LOCAL_STACK_STATE``)
  names one that is alive: the function gets that stack's environment, so what it writes is
  visible to the stack and the other way round (mint with curl, revoke with ``make invoke``);
* otherwise (or with ``--fresh``) a private moto server in this process, with every resource of
  the template created as the local stack creates them, and discarded at exit. Its API URL is
  http://127.0.0.1:3000, the ``domainName`` of the events in ``events/``.

Any event works: HTTP API (payload 2.0), EventBridge, Secrets Manager rotation... The handler's
return value is printed as JSON on stdout; its logs go to stderr. If the handler raises, the error
is printed as Lambda reports it (``errorType``, ``errorMessage``, ``stackTrace``) and the exit
status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from local.emulator import MotoServer
from local.resources import DEFAULT_SECRET_KEY
from local.runtime import LocalFunction, apply_environment
from local.stack import LocalStack, state_path
from local.template import functions, load_template

DEFAULT_URL = "http://127.0.0.1:3000"


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


def read_event(source: str) -> Any:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return json.loads(text)


def lambda_error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def run(function_id: str, event: Any, *, fresh: bool, out: TextIO) -> int:
    specs = functions(load_template())
    if function_id not in specs:
        print(f"unknown function {function_id!r}; the template has: {', '.join(specs)}", file=sys.stderr)
        return 2
    state = None if fresh else live_state(state_path())
    moto: MotoServer | None = None
    try:
        if state is not None:
            print(f"invoke: using the running local stack at {state['url']}", file=sys.stderr)
            apply_environment(state["functions"][function_id]["environment"])
            function = LocalFunction(spec=specs[function_id], name=state["functions"][function_id]["name"])
        else:
            print("invoke: starting a private emulator (no running local stack)", file=sys.stderr)
            moto = MotoServer().start()
            secret_key = os.environ.get("LOCAL_SECRET_KEY") or DEFAULT_SECRET_KEY
            stack = LocalStack.build(url=DEFAULT_URL, endpoint=moto.endpoint, secret_key=secret_key)
            apply_environment(stack.environments[function_id])
            stack.resources.seed_keyrings(stack.endpoint)
            function = stack.functions[function_id]
        try:
            result = function.invoke(event)
        except Exception as exc:  # reported as Lambda reports a failed invocation
            traceback.print_exc(file=sys.stderr)
            print(json.dumps(lambda_error(exc), indent=2), file=out, flush=True)
            return 1
        print(json.dumps(result, indent=2), file=out, flush=True)
        return 0
    finally:
        if moto is not None:
            moto.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.invoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("function", help="logical id of the function in template.yaml (e.g. MintLinkFunction)")
    parser.add_argument("event", help="event file (JSON), or - for stdin")
    parser.add_argument("--fresh", action="store_true", help="ignore a running local stack; use a private emulator")
    args = parser.parse_args(argv)
    event = read_event(args.event)
    # Everything the function prints (Powertools logs, metrics) goes to stderr; stdout is the result.
    # Set before any project module is imported: Powertools' Logger keeps the stream it starts with.
    out = sys.stdout
    sys.stdout = sys.stderr
    try:
        return run(args.function, event, fresh=args.fresh, out=out)
    finally:
        sys.stdout = out


if __name__ == "__main__":
    sys.exit(main())
