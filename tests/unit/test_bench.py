"""The benchmark runner's own pieces (the benchmarks themselves run with ``make bench``, never as tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest

from bench import Figure, discover, percentile
from bench.__main__ import table
from bench._fake_aws import FakeAws
from tests.conftest import ROOT


def test_every_module_registers_and_the_list_shows_them() -> None:
    names = {bench.name for bench in discover()}
    assert {"cold start", "warm cpu", "aws calls", "throughput"} <= names
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
    assert "1.50x" in rows[2] and "<= 1.5x" in rows[2]
    assert "0.00 calls" in rows[3] and "== 0" in rows[3] and " -  " in rows[3]


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
