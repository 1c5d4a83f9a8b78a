"""``make events`` (``python -m local.follow``) follows what the local stack's buses carry, takes
nothing away from the template's rules, never prints a working sign-in link, and cleans up after
itself (and after a follower that was killed)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from local.follow import PREFIX, redact
from signin_links.batch.plan import token_id_for
from tests.e2e.batch_events import put_batch
from tests.e2e.conftest import ROOT, LocalStackHandle

FAKE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzaWQiOiJzaXRfeCJ9.c2lnbmF0dXJlLW5vdC1yZWFs"


class Followed:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in stdout], daemon=True).start()

    def until(self, predicate: Any, timeout: float = 60) -> list[str]:
        """Lines read until one satisfies ``predicate`` (all of them so far)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line.rstrip("\n"))
            if predicate(self.seen[-1]):
                return self.seen
        raise AssertionError(f"not seen within {timeout} s; saw {self.seen[-5:]}")


@contextmanager
def following(stack: LocalStackHandle, *args: str) -> Iterator[Followed]:
    env = {**os.environ, "LOCAL_STACK_STATE": str(stack.state_path), "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "local.follow", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        started = process.stderr.readline()
        assert started.startswith("following "), started
        yield Followed(process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def follow_rules(stack: LocalStackHandle, bus: str) -> list[str]:
    rules = stack.aws("events").list_rules(NamePrefix=PREFIX, EventBusName=bus).get("Rules", [])
    return [rule["Name"] for rule in rules]


def test_redact_hides_tokens_and_jwts() -> None:
    text = f'{{"url":"http://x/accept-token?token={FAKE_JWT}&a=1","raw":"{FAKE_JWT}","ok":"sit_1"}}'
    assert redact(text) == '{"url":"http://x/accept-token?token=<redacted>&a=1","raw":"<redacted>","ok":"sit_1"}'


def test_following_a_batch_through_the_bus(local_stack: LocalStackHandle) -> None:
    bus = local_stack.env("MintLinkFunction")["EVENT_BUS_NAME"]
    # A follower killed without cleaning up left its rule and queue behind (pid 2**22 + 1 cannot exist).
    stale = f"{PREFIX}{2**22 + 1}"
    local_stack.aws("events").put_rule(Name=stale, EventBusName=bus, EventPattern='{"source": ["nothing"]}')
    local_stack.aws("sqs").create_queue(QueueName=stale)

    batch_id = f"e2e-follow-{uuid.uuid4().hex[:8]}"
    with following(local_stack, "--json") as followed:
        assert stale not in follow_rules(local_stack, bus)
        assert follow_rules(local_stack, bus) == [f"{PREFIX}{followed.process.pid}"]
        local_stack.aws("events").put_events(
            Entries=[
                {
                    "Source": "e2e.follow",
                    "DetailType": "Hello",
                    "Detail": json.dumps({"link": f"{local_stack.base_url}/accept-token?token={FAKE_JWT}"}),
                    "EventBusName": bus,
                }
            ]
        )
        put_batch(local_stack, {"batch_id": batch_id, "user_ids": ["user_f1", "user_f2"]})
        lines = followed.until(lambda line: "SignInLinkBatchCompleted" in line and batch_id in line)
    events = [json.loads(line) for line in lines]
    hello = next(event for event in events if event["source"] == "e2e.follow")
    assert hello["detail"]["link"] == f"{local_stack.base_url}/accept-token?token=<redacted>"
    ours = [event for event in events if event["detail"].get("batch_id") == batch_id]
    assert ours[0]["detail-type"] == "MintSignInLinks"
    minted = [event for event in ours if event["detail-type"] == "SignInLinkMinted"]
    assert sorted(event["detail"]["user_id"] for event in minted) == ["user_f1", "user_f2"]
    assert all(event["detail"]["url"].endswith("/accept-token?token=<redacted>") for event in minted)
    assert not any("eyJ" in line for line in lines)
    # Following took nothing from the template's rule: the batch was minted.
    assert local_stack.status(token_id_for(batch_id, "user_f1")) == "pending"
    # Stopped: its rule and queue are gone.
    assert follow_rules(local_stack, bus) == []
    assert not local_stack.aws("sqs").list_queues(QueueNamePrefix=PREFIX).get("QueueUrls")


def test_the_default_format_is_one_line_per_event(local_stack: LocalStackHandle) -> None:
    bus = local_stack.env("MintLinkFunction")["EVENT_BUS_NAME"]
    with following(local_stack) as followed:
        marker = uuid.uuid4().hex
        local_stack.aws("events").put_events(
            Entries=[
                {
                    "Source": "e2e.follow",
                    "DetailType": "Plain",
                    "Detail": json.dumps({"m": marker}),
                    "EventBusName": bus,
                }
            ]
        )
        (line,) = [line for line in followed.until(lambda line: marker in line) if marker in line]
    assert line.split("  ")[1:] == ["e2e.follow", "Plain", json.dumps({"m": marker}, separators=(",", ":"))]


def test_without_a_running_stack_it_says_so(tmp_path: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "local.follow"],
        cwd=ROOT,
        env={**os.environ, "LOCAL_STACK_STATE": str(tmp_path / "none.json")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no local stack is running" in done.stderr
