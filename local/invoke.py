"""Run one function once on an event file, like ``sam local invoke``, without Docker.

    python -m local.invoke <LogicalId> <event.json | -> [--fresh] [--template other.yaml]
    make invoke FUNCTION=MintLinkFunction EVENT=events/create_sign_in_token.json

Where the AWS resources come from:

* a running local stack (``make local``), if ``.local-stack/state.json`` (or ``LOCAL_STACK_STATE``)
  names one that is alive: the function gets that stack's environment, so what it writes is
  visible to the stack and the other way round (mint with curl, revoke with ``make invoke``);
* otherwise (or with ``--fresh``) a private moto server in this process, with every resource of
  the template created as the local stack creates them, and discarded at exit. Its API URL is
  http://127.0.0.1:3000, the ``domainName`` of the events in ``events/``.

Any event works: HTTP API (payload 2.0), EventBridge, Secrets Manager rotation... A rotation
event (``SecretId``, ``ClientRequestToken``, ``Step``) always runs on a private emulator: its
``SecretId`` may be the secret's logical id, and the rotation is staged first as Secrets Manager
would (``local.rotation``). The handler's
return value is printed as JSON on stdout; its logs go to stderr. If the handler raises, the error
is printed as Lambda reports it (``errorType``, ``errorMessage``, ``stackTrace``) and the exit
status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from local.emulator import MotoServer
from local.environment import apply_environment
from local.invocation import error_object
from local.resources import DEFAULT_SECRET_KEY
from local.rotation import is_rotation_event, prepare_rotation_event
from local.runtime import LocalFunction
from local.stack import LocalStack
from local.state_file import live_state, state_path
from local.template import TEMPLATE, functions, load_template

DEFAULT_URL = "http://127.0.0.1:3000"


def read_event(source: str) -> Any:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return json.loads(text)


def prepare_rotation(event: dict[str, Any], stack: LocalStack) -> dict[str, Any]:
    """A rotation event's ``SecretId`` may name the secret's logical id (events/ cannot know the local
    ARN): it becomes the local ARN. Then Secrets Manager's part of the rotation is staged on the
    emulator (:func:`local.rotation.prepare_rotation_event`), as ``RotateSecret`` does before it invokes."""
    secret_id = str(event["SecretId"])
    if stack.resources.kinds.get(secret_id) == "AWS::SecretsManager::Secret":
        event = {**event, "SecretId": stack.resources.ref(secret_id)}
    prepare_rotation_event(event)
    return event


def run(function_id: str, event: Any, *, fresh: bool, out: TextIO, template_path: Path = TEMPLATE) -> int:
    template = load_template(template_path.resolve())
    specs = functions(template, root=template_path.resolve().parent)
    if function_id not in specs:
        print(f"unknown function {function_id!r}; the template has: {', '.join(specs)}", file=sys.stderr)
        return 2
    rotation = is_rotation_event(event)
    if rotation:
        fresh = True  # Secrets Manager's staging is done on an emulator in this process (local.rotation)
    state = None if fresh or template_path.resolve() != TEMPLATE else live_state(state_path())
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
            stack = LocalStack.build(
                url=DEFAULT_URL, endpoint=moto.endpoint, secret_key=secret_key, template=template, specs=specs
            )
            apply_environment(stack.environments[function_id])
            stack.seed_keyrings()
            function = stack.functions[function_id]
            if rotation:
                event = prepare_rotation(event, stack)
        try:
            result = function.invoke(event)
        except Exception as exc:  # reported as Lambda reports a failed invocation
            traceback.print_exc(file=sys.stderr)
            print(json.dumps(error_object(exc), indent=2), file=out, flush=True)
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
    parser.add_argument(
        "--template",
        type=Path,
        default=TEMPLATE,
        help="SAM template (default: template.yaml); implies --fresh if another",
    )
    args = parser.parse_args(argv)
    event = read_event(args.event)
    # Everything the function prints (Powertools logs, metrics) goes to stderr; stdout is the result.
    # Set before any project module is imported: Powertools' Logger keeps the stream it starts with.
    out = sys.stdout
    sys.stdout = sys.stderr
    try:
        return run(args.function, event, fresh=args.fresh, out=out, template_path=args.template)
    finally:
        sys.stdout = out


if __name__ == "__main__":
    sys.exit(main())
