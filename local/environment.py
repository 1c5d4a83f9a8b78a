"""The functions' environment on the local stack: each function's template variables plus the local
AWS settings, set ONCE in the stack's process as the union of every function's, before any handler
is imported or any worker started (workers inherit ``os.environ`` when they are spawned). Two
functions that give one variable different values cannot share it: :func:`union_environment`
refuses with the variable's name."""

from __future__ import annotations

import os
from collections.abc import Mapping

from local.account import FAKE_CREDENTIALS, REGION

# What every local function sees besides its template environment.
BASE_ENVIRONMENT = {
    **FAKE_CREDENTIALS,
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}
# Never let a local function reach real AWS through the developer's own credentials.
SCRUBBED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE")


class EnvironmentConflict(ValueError):
    """Two functions set one variable to different values; they cannot share a process."""


def function_env(template_env: Mapping[str, str], endpoint: str) -> dict[str, str]:
    """The full environment of one function: its template variables plus the local AWS settings."""
    return {**BASE_ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint, **template_env}


def union_environment(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for function, env in environments.items():
        for name, value in env.items():
            if name in merged and merged[name] != value:
                raise EnvironmentConflict(
                    f"{name} is {merged[name]!r} for {owner[name]} but {value!r} for {function}: "
                    "the local stack gives every function one environment and needs one value"
                )
            merged[name] = value
            owner.setdefault(name, function)
    return merged


def apply_environment(env: Mapping[str, str]) -> None:
    """Set ``env`` in this process (and so in every worker spawned after this call)."""
    for name in SCRUBBED:
        os.environ.pop(name, None)
    os.environ.update(env)
