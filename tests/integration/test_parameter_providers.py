"""Secrets and SSM parameters are read through Powertools' public provider API: one SecretsProvider
and one SSMProvider per execution environment, on the project's shared clients (``aws.py``), never
written into Powertools' internal table of default providers."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

from signin_links import aws
from signin_links.keyring import fetch_secret, forget_secrets
from tests.conftest import REGION, Stack
from tests.handlers import mint


def test_the_functions_read_secrets_and_parameters_through_their_own_providers(stack: Stack, context: Any) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/p/url", Value="https://a.example", Type="String")
    mint(context)  # the API keys and the ticket keyring
    assert aws.fetch_parameter("/p/url", 60) == "https://a.example"
    assert DEFAULT_PROVIDERS == {}, "something wrote into Powertools' internal provider table"
    assert aws.secrets_provider().client is aws.client("secretsmanager")
    assert aws.parameters_provider().client is aws.client("ssm")


def test_forgetting_secrets_makes_the_next_read_go_to_aws(stack: Stack) -> None:
    secret_id = stack.env["API_KEYS_SECRET_ID"]
    first = fetch_secret(secret_id, 300)
    stack.secretsmanager.put_secret_value(
        SecretId=secret_id, SecretString='{"secret_key": "sk_test_rotated_0000000001"}'
    )
    assert fetch_secret(secret_id, 300) == first  # cached for the max age
    forget_secrets()
    assert fetch_secret(secret_id, 300) == '{"secret_key": "sk_test_rotated_0000000001"}'
