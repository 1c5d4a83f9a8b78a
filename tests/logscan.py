"""pytest plugin: no log line of the whole suite may carry a token, a secret key or a full accept URL.

Loaded by ``tests/conftest.py`` (``pytest_plugins``). After every phase (setup, call, teardown) of
every test it scans

* every record logged to the service's logger (``signin-links``, which Powertools does not
  propagate), formatted as Powertools would write it, at DEBUG level and up;
* pytest's captured log section (the root logger: botocore, moto, the local stack, ...);
* every line of captured stdout/stderr that is a JSON object: what a Lambda function's structured
  logs and metrics (EMF) look like in CloudWatch. Plain-text lines (a developer banner printing the
  local secret key on purpose) are not log records and are left alone;
* every new line of the log files registered with :func:`watch_log_file` (the e2e local stack runs
  in a subprocess and logs to a file), minus the secrets allowed there (its banner prints its key).

A line that holds a JWT-shaped string (``eyJ...\\.eyJ...\\....``), an ``accept-token?token=`` URL,
a PEM private key, or a known secret turns the phase into a failure that names the test. Known
secrets: every ``SecretString`` that goes into or comes out of Secrets Manager during the run (the
plugin watches botocore's ``_make_api_call``, so the fixtures, moto and the local stack need no
change), with each keyring key's material, plus anything passed to :func:`remember_secret`.
The offending value is never echoed in full.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient

SERVICE_LOGGER = "signin-links"

JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
ACCEPT_URL = re.compile(r"accept-token(\?|%3F)token(=|%3D)", re.IGNORECASE)
PRIVATE_KEY = re.compile(r"PRIVATE KEY-----")
MIN_SECRET_LENGTH = 16
# Secrets are found by their first 16 characters (a dict lookup per position of each candidate run),
# so thousands of remembered secrets cost no more than a few.
_SECRET_CHARS = re.compile(r"[A-Za-z0-9_+/=-]{16,}")
_secrets: dict[str, set[str]] = {}


def _add_secret(value: str) -> None:
    if len(value) >= MIN_SECRET_LENGTH:
        _secrets.setdefault(value[:MIN_SECRET_LENGTH], set()).add(value)


def remember_secret(value: str) -> None:
    """Register a secret (an API key, or a keyring secret's JSON: each key's material is added)."""
    if not value:
        return
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for name in ("secret_key", "bootstrap"):
            if isinstance(data.get(name), str):
                remember_secret(data[name])
        for item in data.get("secret_keys") or []:
            if isinstance(item, str):
                remember_secret(item)
        for key in data.get("keys") or []:
            if not isinstance(key, dict):
                continue
            for name in ("secret", "private_key"):  # an HMAC key; an Ed25519 private key (base64url)
                if isinstance(key.get(name), str):
                    remember_secret(key[name])
            pem = key.get("private_key_pem")
            if isinstance(pem, str):
                # any full line of the key's base64 body is enough to recognise it
                for line in pem.splitlines():
                    if len(line) >= 40 and "-----" not in line:
                        _add_secret(line)
        return
    _add_secret(value)


def _secret_positions(line: str) -> Iterator[tuple[int, int]]:
    for run in _SECRET_CHARS.finditer(line):
        text, offset = run.group(), run.start()
        for i in range(len(text) - MIN_SECRET_LENGTH + 1):
            for secret in _secrets.get(text[i : i + MIN_SECRET_LENGTH], ()):
                if text.startswith(secret, i):
                    yield offset + i, offset + i + len(secret)


@dataclass(frozen=True)
class Leak:
    kind: str
    source: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.kind} in {self.source}: {self.excerpt}"


def _redact(line: str, start: int, end: int) -> str:
    """The line around the match, the matched value cut to its first 10 characters."""
    before = line[max(0, start - 60) : start]
    value = line[start:end]
    after = line[end : end + 40]
    return f"...{before}{value[:10]}<{len(value) - 10} more chars redacted>{after}..."


def find_leaks(lines: Iterable[str], source: str, allowed: frozenset[str] = frozenset()) -> list[Leak]:
    leaks = []
    for line in lines:
        for kind, pattern in (("JWT", JWT_SHAPED), ("accept URL", ACCEPT_URL), ("private key", PRIVATE_KEY)):
            match = pattern.search(line)
            if match:
                leaks.append(Leak(kind, source, _redact(line, match.start(), match.end())))
        for start, end in _secret_positions(line):
            if line[start:end] not in allowed:
                leaks.append(Leak("secret key", source, _redact(line, start, end)))
                break
    return leaks


def _json_lines(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                if isinstance(json.loads(stripped), dict):
                    lines.append(stripped)
            except ValueError:
                continue
    return lines


class ServiceRecords(logging.Handler):
    """Keeps every record of the service logger, formatted as its own (Powertools) handler would."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        formatter = next(
            (h.formatter for h in logging.getLogger(SERVICE_LOGGER).handlers if h is not self and h.formatter), None
        )
        try:
            text = formatter.format(record) if formatter else record.getMessage()
        except Exception:  # formatting must never hide a record: fall back to its raw fields
            text = repr(record.__dict__)
        self.lines.append(text)

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


_records = ServiceRecords()


@dataclass
class _Watched:
    offset: int
    allowed: frozenset[str]


_watched: dict[Path, _Watched] = {}


def watch_log_file(path: Path, *, allowed: Iterable[str] = ()) -> None:
    """Scan every line ``path`` gets (from its start), after each test phase; ``allowed`` secrets
    (a stack's own key, printed in its banner on purpose) are not reported."""
    _watched[Path(path)] = _Watched(offset=0, allowed=frozenset(allowed))


def _new_file_lines() -> list[tuple[str, list[str], frozenset[str]]]:
    found = []
    for path, watched in list(_watched.items()):
        try:
            with path.open("rb") as handle:
                handle.seek(watched.offset)
                data = handle.read()
        except OSError:
            del _watched[path]
            continue
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next scan
        watched.offset += len(complete)
        if complete:
            found.append((path.name, complete.decode("utf-8", "replace").splitlines(), watched.allowed))
    return found


_original_make_api_call = BaseClient._make_api_call


def _watching_make_api_call(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
    """Pass-through that remembers every secret sent to or read from Secrets Manager."""
    watched = self.meta.service_model.service_name == "secretsmanager"
    if watched and isinstance(api_params.get("SecretString"), str):
        remember_secret(api_params["SecretString"])
    response = _original_make_api_call(self, operation_name, api_params)
    if watched and isinstance(response, dict):
        for name in ("SecretString", "RandomPassword"):
            if isinstance(response.get(name), str):
                remember_secret(response[name])
    return response


def pytest_configure(config: pytest.Config) -> None:
    logger = logging.getLogger(SERVICE_LOGGER)
    if _records not in logger.handlers:
        logger.addHandler(_records)
    BaseClient._make_api_call = _watching_make_api_call  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    logging.getLogger(SERVICE_LOGGER).removeHandler(_records)
    BaseClient._make_api_call = _original_make_api_call  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    # Powertools sets the level when a Logger is created; scan DEBUG records too.
    logging.getLogger(SERVICE_LOGGER).setLevel(logging.DEBUG)
    _records.take()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    leaks = find_leaks(_records.take(), f"the {SERVICE_LOGGER} logger")
    for name, lines, allowed in _new_file_lines():
        leaks += find_leaks(lines, f"log file {name}", allowed)
    for title, content in report.sections:
        if not title.endswith(f" {call.when}"):
            continue  # sections of earlier phases were scanned then
        if title.startswith("Captured log"):
            leaks += find_leaks(content.splitlines(), title.lower())
        elif title.startswith(("Captured stdout", "Captured stderr")):
            leaks += find_leaks(_json_lines(content), title.lower())
    if leaks:
        details = "\n".join(f"  - {leak}" for leak in leaks[:10])
        more = f"\n  ... and {len(leaks) - 10} more" if len(leaks) > 10 else ""
        message = (
            f"LOG SCAN: {item.nodeid} ({call.when}) logged {len(leaks)} forbidden value(s): "
            f"tokens, secret keys and accept URLs must never be logged (log sit_/sess_ ids instead).\n"
            f"{details}{more}"
        )
        report.outcome = "failed"
        report.longrepr = f"{report.longrepr}\n\n{message}" if report.longrepr else message
    return report
