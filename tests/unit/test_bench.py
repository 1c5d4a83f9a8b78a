"""The benchmark runner's own pieces (the benchmarks themselves run with ``make bench``, never as tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from bench import Figure, discover, percentile
from bench.__main__ import merged, table
from bench._envs import bytecode_census, probe
from bench._fake_aws import FakeAws
from tests.conftest import ROOT


def test_every_module_registers_and_the_list_shows_them() -> None:
    names = {bench.name for bench in discover()}
    assert {"cold start", "warm cpu", "aws calls", "throughput", "email"} <= names
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert all(name in listed for name in names)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


def test_the_table_prints_each_figure_with_its_ratio() -> None:
    rows = table(
        [
            Figure("cold start", "mint", 150.0, "ms", "import boto3", 100.0, target="<= 1.5x"),
            Figure("aws calls", "mint: secretsmanager", 0.0, "calls", target="== 0"),
        ]
    ).splitlines()
    assert "1.50x" in rows[2]
    assert "<= 1.5x" in rows[2]
    assert "0.00 calls" in rows[3]
    assert "== 0" in rows[3]
    assert " -  " in rows[3]


def test_a_merged_run_replaces_its_groups_figures_in_place_and_says_when_it_ran() -> None:
    def figure(group: str, name: str, value: float) -> dict[str, object]:
        return Figure(group, name, value, "calls").as_json()

    def run(started_at: str, figures: list[dict[str, object]], errors: dict[str, str]) -> dict[str, object]:
        groups = {str(f["group"]) for f in figures} | set(errors)
        return {
            "command": "python -m bench",
            "started_at": started_at,
            "seconds": 1.0,
            "machine": {"load_average": [9.0, 9.0, 9.0]},
            "durations_s": dict.fromkeys(groups, 1.0),
            "figures": figures,
            "errors": errors,
        }

    previous = run(
        "2026-11-29T07:46:16Z",
        [figure("cold start", "mint", 1), figure("aws calls", "refresh old", 2), figure("batch", "x", 3)],
        {"email": "Boom"},
    )
    partial = run("2026-12-06T06:40:00Z", [figure("aws calls", "refresh", 1), figure("email", "sent", 5)], {})
    result = merged(previous, partial, {"aws calls", "email"})
    assert [(f["group"], f["name"]) for f in result["figures"]] == [
        ("cold start", "mint"),
        ("aws calls", "refresh"),
        ("batch", "x"),
        ("email", "sent"),
    ]
    assert result["errors"] == {}  # the group that failed before ran again, and did not fail
    assert result["started_at"] == "2026-11-29T07:46:16Z"  # the file still says what it was
    (entry,) = result["merged"]
    assert (entry["started_at"], entry["groups"]) == ("2026-12-06T06:40:00Z", ["aws calls", "email"])
    # A group that fails when run again keeps what it had; the failure is listed with that run.
    again = merged(result, run("2026-12-06T07:00:00Z", [], {"batch": "Boom"}), {"batch"})
    assert [f["name"] for f in again["figures"]] == ["mint", "refresh", "x", "sent"]
    assert again["errors"] == {}
    assert [(m["groups"], m["errors"]) for m in again["merged"]] == [
        (["aws calls", "email"], {}),
        ([], {"batch": "Boom"}),
    ]


def test_the_fake_aws_answers_real_clients_at_the_http_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    fake = FakeAws({"arn:secret": json.dumps({"secret_key": "k"})}).install()
    try:
        session = boto3.session.Session(region_name="us-east-1")
        secrets = session.client("secretsmanager")
        dynamodb = session.client("dynamodb")
        assert json.loads(secrets.get_secret_value(SecretId="arn:secret")["SecretString"]) == {"secret_key": "k"}
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "sit_1"}, "status": {"S": "pending"}})
        updated = dynamodb.update_item(
            TableName="t",
            Key={"pk": {"S": "sit_1"}},
            UpdateExpression="SET #s = :a, session_id = :sess",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":a": {"S": "accepted"}, ":sess": {"S": "sess_1"}},
            ReturnValues="ALL_NEW",
        )
        assert updated["Attributes"]["status"] == {"S": "accepted"}
        assert updated["Attributes"]["session_id"] == {"S": "sess_1"}
        with pytest.raises(secrets.exceptions.ResourceNotFoundException):
            secrets.get_secret_value(SecretId="arn:missing")
        assert fake.calls == {"GetSecretValue": 2, "PutItem": 1, "UpdateItem": 1}
    finally:
        fake.uninstall()


def test_the_bytecode_census_tells_the_makefiles_unchecked_hash_pyc_from_others(tmp_path: Path) -> None:
    for name in ("unchecked", "timestamp", "bare"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mod.py").write_text("VALUE = 1\n")
    tag = sys.implementation.cache_tag
    compileall = [sys.executable, "-m", "compileall", "-q"]
    subprocess.run([*compileall, "--invalidation-mode", "unchecked-hash", str(tmp_path / "unchecked")], check=True)
    subprocess.run([*compileall, "--invalidation-mode", "timestamp", str(tmp_path / "timestamp")], check=True)
    assert bytecode_census(tmp_path / "unchecked", tag) == {"py_files": 1, "with_pyc": 1, "unchecked_hash_pyc": 1}
    assert bytecode_census(tmp_path / "timestamp", tag) == {"py_files": 1, "with_pyc": 1, "unchecked_hash_pyc": 0}
    assert bytecode_census(tmp_path / "bare", tag) == {"py_files": 1, "with_pyc": 0, "unchecked_hash_pyc": 0}
    assert bytecode_census(tmp_path / "unchecked", "cpython-00")["with_pyc"] == 0  # another version's tag


def test_an_interpreter_that_does_not_run_is_not_lambdas_python(tmp_path: Path) -> None:
    shim = tmp_path / "python3.13"  # like pyenv's shim with no PYENV_VERSION: prints, then fails
    shim.write_text('#!/bin/sh\necho "pyenv: python3.13: command not found"\nexit 127\n')
    shim.chmod(0o755)
    assert probe(str(shim)) is None
    assert probe(str(tmp_path / "missing")) is None
    here = probe(sys.executable)
    assert here is not None
    assert here.version_info == sys.version_info[:2]
    assert here.cache_tag == sys.implementation.cache_tag
