"""The local stack, started once per test session, for every test in ``tests/e2e``.

``local_stack`` (session scope) runs ``python -m local.stack`` in a subprocess, on a free port
(``PORT=0``), with its own state file (``LOCAL_STACK_STATE``) so several runs on one machine never
share one, waits until it answers, yields a :class:`LocalStackHandle`, and stops it with SIGTERM
at the end. Every test in this directory is marked ``e2e``.

What a test gets::

    def test_something(local_stack: LocalStackHandle, api: httpx.Client) -> None:
        minted = api.post("/v1/sign_in_tokens", json={"user_id": "user_1"}).json()
        item = local_stack.item(minted["id"])          # DynamoDB, through moto
        local_stack.base_url, local_stack.secret_key, local_stack.moto_endpoint
        local_stack.table_name                          # the TokensTable
        local_stack.aws("events")                       # any boto3 client bound to the stack's moto
        local_stack.capture({"source": ["signin-links"]})  # an SQS queue receiving what matches on its bus
        local_stack.state["secrets"]["SessionKeyringSecret"]   # everything in .local-stack/state.json
        local_stack.output()                            # what the stack printed so far (its log)

``api`` is an ``httpx.Client`` on ``base_url`` with the Bearer key set. A test that needs a stack
configured differently (a template parameter, another secret key) starts its own with
:func:`running_stack`::

    with running_stack(tmp_path, env={"LOCAL_PARAMETER_AcceptAutoSubmit": "false"}) as stack: ...

``browser`` (module scope) is a headless Chromium (Debian's, through playwright); ``restore_environ``
puts ``os.environ`` back after the test.

Tests share the session's stack: mint your own tokens and never assume an empty table.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.logscan import watch_log_file

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0  # a cold import of moto and RSA key generation on a busy 2-core machine


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@dataclass
class LocalStackHandle:
    """A running local stack: its URL, key, emulator endpoint, resource names and log."""

    state: dict[str, Any]
    process: subprocess.Popen[bytes]
    log_path: Path
    state_path: Path
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return str(self.state["url"])

    @property
    def secret_key(self) -> str:
        return str(self.state["secret_key"])

    @property
    def moto_endpoint(self) -> str:
        return str(self.state["moto_endpoint"])

    @property
    def region(self) -> str:
        return str(self.state["region"])

    @property
    def table_name(self) -> str:
        return str(self.state["tables"]["TokensTable"])

    def env(self, function: str) -> dict[str, str]:
        """The environment the stack gives ``function`` (a logical id)."""
        return dict(self.state["functions"][function]["environment"])

    def aws(self, service: str) -> Any:
        """A boto3 client bound to the stack's moto server."""
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.session.Session().client(
                service,
                endpoint_url=self.moto_endpoint,
                region_name=self.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._clients[service]

    def item(self, token_id: str) -> dict[str, Any] | None:
        """The raw DynamoDB item of a sign-in token, or ``None``."""
        response = self.aws("dynamodb").get_item(TableName=self.table_name, Key={"pk": {"S": token_id}})
        item: dict[str, Any] | None = response.get("Item")
        return item

    def status(self, token_id: str) -> str:
        """The stored status of a sign-in token (which must exist)."""
        item = self.item(token_id)
        assert item is not None, token_id
        return str(item["status"]["S"])

    def mint(self, user_id: str = "user_e2e", **body: Any) -> dict[str, Any]:
        """Mint a sign-in token over HTTP; the ``sign_in_token`` object."""
        with self.client() as api:
            response = api.post("/v1/sign_in_tokens", json={"user_id": user_id, **body})
        assert response.status_code == 200, response.text
        minted: dict[str, Any] = response.json()
        return minted

    def capture(self, pattern: dict[str, Any], bus: str | None = None) -> str:
        """The URL of a new SQS queue receiving what ``pattern`` matches on ``bus`` (the stack's bus by default)."""
        sqs, events = self.aws("sqs"), self.aws("events")
        name = f"capture-{uuid.uuid4().hex[:12]}"
        url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = bus or self.env("MintLinkFunction")["EVENT_BUS_NAME"]
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
        return url

    def output(self) -> str:
        """Everything the stack process printed (stdout and stderr) so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on the stack, authorised with its secret key."""
        headers = {"Authorization": f"Bearer {self.secret_key}", **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


def _alive(url: str) -> bool:
    try:
        httpx.get(url + "/", timeout=2)  # any answer (404 for an unknown route) means it is serving
    except httpx.HTTPError:
        return False
    return True


@contextmanager
def running_stack(workdir: Path, env: dict[str, str] | None = None) -> Iterator[LocalStackHandle]:
    """Start ``python -m local.stack`` with its state and log under ``workdir``; stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    state_path = workdir / "state.json"
    log_path = workdir / "stack.log"
    child_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "LOCAL_STACK_STATE": str(state_path),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    child_env.pop("AWS_ENDPOINT_URL", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.stack"], cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        state = _wait_until_ready(process, state_path, log_path)
        # The stack's log (its functions' logs) is scanned like every test's (tests/logscan.py); its
        # banner prints its own key on purpose.
        watch_log_file(log_path, allowed=[str(state["secret_key"])])
        yield LocalStackHandle(state=state, process=process, log_path=log_path, state_path=state_path)
    finally:
        stop(process)


def _wait_until_ready(process: subprocess.Popen[bytes], state_path: Path, log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        if state_path.exists():
            try:
                state: dict[str, Any] = json.loads(state_path.read_text(encoding="utf-8"))
            except ValueError:
                state = {}
            if state.get("pid") == process.pid and _alive(str(state["url"])):
                return state
        time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"the local stack did not start within {START_TIMEOUT_S:.0f}s:\n{log_path.read_text()[-4000:]}")


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> int:
    """SIGTERM (the stack stops cleanly on it), then SIGKILL if it lingers; returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    return process.returncode


# The session's stack runs without delivery by email: its batches (10,000 users without addresses)
# would each start an email invocation in the background. tests/e2e/test_email.py starts its own.
SESSION_ENV = {"LOCAL_PARAMETER_EmailSender": ""}


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    with running_stack(tmp_path_factory.mktemp("local-stack"), env=SESSION_ENV) as stack:
        yield stack


@pytest.fixture
def api(local_stack: LocalStackHandle) -> Iterator[httpx.Client]:
    with local_stack.client() as client:
        yield client


# Debian's Chromium, driven by playwright (`playwright install` needs the internet); one per module.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (skips the test where it is not installed: ``make chromium``)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """``os.environ`` as it was before the test, whatever the test (or what it starts) set."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
