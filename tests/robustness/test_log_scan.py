"""The log scan (tests/logscan.py) really catches what it promises to catch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.logscan import find_leaks, remember_secret

JWT = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsifQ.eyJzaWQiOiJzaXRfMSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"


def kinds(line: str) -> list[str]:
    return [leak.kind for leak in find_leaks([line], "test")]


def test_find_leaks_recognises_each_kind_and_redacts_it() -> None:
    assert kinds(f'{{"message": "minted", "token": "{JWT}"}}') == ["JWT"]
    assert kinds('{"url": "https://links.example.com/accept-token?token=abc"}') == ["accept URL"]
    assert kinds("GET /accept-token%3Ftoken%3Dabc") == ["accept URL"]
    assert kinds("-----BEGIN PRIVATE KEY-----") == ["private key"]
    remember_secret("sk_test_planted_secret_value_42")
    assert kinds("Authorization: Bearer sk_test_planted_secret_value_42") == ["secret key"]
    remember_secret(
        json.dumps({"kind": "hmac", "keys": [{"kid": "k1", "secret": "A" * 20 + "hmacmaterial" + "B" * 11}]})
    )
    assert kinds("key=" + "A" * 20 + "hmacmaterial" + "B" * 11 + "!") == ["secret key"]
    ed25519 = "C" * 20 + "ed25519seed" + "D" * 12  # an Ed25519 private key: 43 base64url characters
    remember_secret(
        json.dumps({"kind": "ed25519", "keys": [{"kid": "k2", "public_key": "E" * 43, "private_key": ed25519}]})
    )
    assert kinds(f"seed {ed25519}") == ["secret key"]
    leak = find_leaks([f"token={JWT}"], "test")[0]
    assert JWT not in str(leak)
    assert "redacted" in str(leak)


def test_find_leaks_lets_ids_and_ordinary_lines_through() -> None:
    for line in (
        '{"message": "sign-in token minted", "sign_in_token_id": "sit_2a8d0f0f0f0f0f0f0f0f0f"}',
        '{"message": "session issued", "session_id": "sess_2a8d0f0f0f0f0f0f0f0f0f", "kid": "hmac-20261124-ab12"}',
        "GET /accept-token 200",
        "eyJhbGciOiJIUzI1NiJ9 alone is a header, not a token",
        "sk_test_planted_secret_value_4",  # a prefix of a secret is not the secret
    ):
        assert kinds(line) == [], line


PLANTED = """
import json
import logging

import pytest

from signin_links.observability import logger
from tests.logscan import remember_secret, watch_log_file

JWT = "{jwt}"


def test_clean():
    logger.info("sign-in token minted", extra={{"sign_in_token_id": "sit_0123456789abcdef0123"}})


def test_logs_a_token_as_extra():
    logger.info("minted", extra={{"token": JWT}})


def test_logs_an_accept_url_at_debug():
    logger.debug("link", extra={{"url": "https://x.example/accept-token?token=abc"}})


def test_logs_a_secret_on_the_root_logger():
    remember_secret("sk_test_planted_secret_value_42")
    logging.getLogger("botocore.fake").warning("header Bearer sk_test_planted_secret_value_42")


def test_prints_a_json_line_with_a_token():
    print(json.dumps({{"_aws": {{}}, "token": JWT}}))


def test_prints_a_banner_with_the_key():
    print("Secret key: sk_test_planted_secret_value_42")  # a developer banner, not a log record


@pytest.fixture
def noisy_teardown():
    yield
    logger.warning("teardown", extra={{"session_token": JWT}})


def test_logs_in_teardown(noisy_teardown):
    pass


def test_a_watched_log_file_with_an_accept_url(tmp_path):
    log = tmp_path / "stack.log"
    log.write_text("Secret key  sk_test_planted_allowed_key_1234\\n")
    remember_secret("sk_test_planted_allowed_key_1234")
    watch_log_file(log, allowed=["sk_test_planted_allowed_key_1234"])
    with log.open("a") as handle:
        handle.write('{{"message": "minted", "url": "https://x.example/accept-token?token=abc"}}\\n')


def test_a_watched_log_file_with_only_its_allowed_key(tmp_path):
    log = tmp_path / "stack.log"
    log.write_text("Secret key  sk_test_planted_allowed_key_1234\\n")
    remember_secret("sk_test_planted_allowed_key_1234")
    watch_log_file(log, allowed=["sk_test_planted_allowed_key_1234"])
"""


def test_the_plugin_fails_each_test_that_logs_a_forbidden_value(tmp_path: Path) -> None:
    (tmp_path / "test_planted.py").write_text(PLANTED.format(jwt=JWT))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.logscan", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "POWERTOOLS_SERVICE_NAME": "signin-links",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}",
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    for name in (
        "test_logs_a_token_as_extra",
        "test_logs_an_accept_url_at_debug",
        "test_logs_a_secret_on_the_root_logger",
        "test_prints_a_json_line_with_a_token",
    ):
        assert f"FAILED test_planted.py::{name}" in output, output
        assert f"LOG SCAN: test_planted.py::{name} (call)" in output, output
    assert "ERROR test_planted.py::test_logs_in_teardown" in output, output
    assert "LOG SCAN: test_planted.py::test_logs_in_teardown (teardown)" in output, output
    assert "FAILED test_planted.py::test_a_watched_log_file_with_an_accept_url" in output, output
    assert "accept URL in log file stack.log" in output, output
    assert "PASSED test_planted.py::test_a_watched_log_file_with_only_its_allowed_key" in output, output
    assert "PASSED test_planted.py::test_clean" in output, output
    assert "PASSED test_planted.py::test_prints_a_banner_with_the_key" in output, output
    report = output.split("short test summary info")[-1]
    assert JWT not in report, "the report echoed the token"
