"""Follow what the running local stack's event buses carry, as ``tail -f`` follows a file.

    python -m local.follow [--json] [--bus NAME ...]
    make events

It finds the running stack through its state file (``.local-stack/state.json`` or
``LOCAL_STACK_STATE``), then adds a rule of its own to each of the stack's buses (and the default
bus, where AWS services such as SES put their events) that matches every event, with a queue of its
own as the target. EventBridge gives a copy of each event to every matching rule, so following
takes nothing away from the template's rules. Each event is printed as one line as it arrives
(``--json``: the whole event as JSON). On Ctrl-C or SIGTERM the rule and the queue are removed;
those left behind by a follower that was killed are removed by the next one.

The token of an accept URL and anything shaped like a JWT are printed as ``<redacted>``: a minted
link's event carries a working sign-in link, which belongs in the mail (see the outbox page), not in
a terminal's scrollback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any, TextIO

from local.emulator import aws_client
from local.resources import STACK_NAME
from local.rules import WHOLE_EVENT
from local.state_file import running_stack

PREFIX = f"{STACK_NAME}-follow-"
CATCH_ALL = {"source": [{"prefix": ""}]}  # every event has a source
IDLE_S = 0.25
TOKEN = re.compile(r"([?&](?:token|__clerk_ticket)=)[^&#\s\"\\]+", re.IGNORECASE)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    """``text`` with every accept URL's token and every JWT-shaped string replaced by ``<redacted>``."""
    return JWT.sub("<redacted>", TOKEN.sub(r"\1<redacted>", text))


def line_for(event: dict[str, Any], *, as_json: bool) -> str:
    if as_json:
        return redact(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
    detail = redact(json.dumps(event.get("detail"), separators=(",", ":"), ensure_ascii=False))
    when = str(event.get("time", ""))[11:19] or time.strftime("%H:%M:%S", time.gmtime())
    return f"{when}  {event.get('source')}  {event.get('detail-type')}  {detail}"


class Follower:
    """One follower: its queue and one rule per bus, in the stack's emulator."""

    def __init__(self, endpoint: str, buses: Iterable[str]) -> None:
        self.endpoint = endpoint
        self.buses = list(dict.fromkeys(buses))
        self.name = f"{PREFIX}{os.getpid()}"
        self.events = aws_client("events", endpoint)
        self.sqs = aws_client("sqs", endpoint)
        self.queue_url = ""

    def remove_stale(self) -> list[str]:
        """Remove the rules and queues of followers whose process is gone; returns their names."""
        removed = []
        for bus in self.buses:
            for rule in self.events.list_rules(NamePrefix=PREFIX, EventBusName=bus).get("Rules", []):
                if _alive(rule["Name"]):
                    continue
                self._remove_rule(rule["Name"], bus)
                removed.append(rule["Name"])
        for url in self.sqs.list_queues(QueueNamePrefix=PREFIX).get("QueueUrls", []):
            if not _alive(url.rsplit("/", 1)[1]):
                self.sqs.delete_queue(QueueUrl=url)
        return removed

    def start(self) -> None:
        self.queue_url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for bus in self.buses:
            self.events.put_rule(Name=self.name, EventBusName=bus, EventPattern=json.dumps(CATCH_ALL))
            self.events.put_targets(
                Rule=self.name,
                EventBusName=bus,
                Targets=[{"Id": "follow", "Arn": arn, "InputTransformer": {"InputTemplate": WHOLE_EVENT}}],
            )

    def poll(self) -> list[dict[str, Any]]:
        """The events that arrived since the last poll, oldest first."""
        found: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages") or []
            if not messages:
                return found
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
            )
            for message in messages:
                event = json.loads(message["Body"])
                if isinstance(event, dict):
                    event.pop("ingestion-time", None)
                    found.append(event)

    def stop(self) -> None:
        # The stack (and its emulator) may be gone already: then there is nothing left to remove.
        for bus in self.buses:
            with contextlib.suppress(Exception):
                self._remove_rule(self.name, bus)
        if self.queue_url:
            with contextlib.suppress(Exception):
                self.sqs.delete_queue(QueueUrl=self.queue_url)

    def _remove_rule(self, name: str, bus: str) -> None:
        targets = self.events.list_targets_by_rule(Rule=name, EventBusName=bus).get("Targets", [])
        if targets:
            self.events.remove_targets(Rule=name, EventBusName=bus, Ids=[target["Id"] for target in targets])
        self.events.delete_rule(Name=name, EventBusName=bus)


def _alive(name: str) -> bool:
    """Whether the follower that owns ``name`` (``...-follow-<pid>``) still runs."""
    try:
        os.kill(int(name.rsplit("-", 1)[1]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def follow(state: dict[str, Any], *, buses: list[str], as_json: bool, out: TextIO) -> int:
    follower = Follower(str(state["moto_endpoint"]), buses)
    follower.remove_stale()
    follower.start()
    print(f"following {', '.join(follower.buses)} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        while True:
            try:
                events = follower.poll()
            except Exception:  # its emulator stopped answering: there is nothing left to follow
                print("the local stack stopped", file=sys.stderr, flush=True)
                return 0
            for event in events:
                print(line_for(event, as_json=as_json), file=out, flush=True)
            if not events:
                time.sleep(IDLE_S)
    except KeyboardInterrupt:
        return 0
    finally:
        follower.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.follow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print each event whole, as one JSON line")
    parser.add_argument("--bus", action="append", default=[], help="follow only this bus (repeatable)")
    args = parser.parse_args(argv)
    state = running_stack()
    if state is None:
        return 2
    signal.signal(signal.SIGTERM, _stop)
    buses = args.bus or [*state["event_buses"].values(), "default"]
    return follow(state, buses=buses, as_json=args.json, out=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
