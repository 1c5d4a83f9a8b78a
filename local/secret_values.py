"""What a template secret holds on the local stack: its ``SecretString``, or a value made as
``GenerateSecretString`` would make it (template, key, length, character classes), then made usable
locally (a secret holding ``secret_key`` gets the local API key). A keyring secret created without
keys (``{"kind": "ed25519" | "rsa" | "hmac", "keys": []}``) is recognised here and seeded later
(``LocalResources.seed_keyrings``)."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def generate_password(spec: dict[str, Any]) -> str:
    """A random string following ``GenerateSecretString``'s character rules."""
    length = int(spec.get("PasswordLength", 32))
    excluded = set(str(spec.get("ExcludeCharacters", "")))
    classes = []
    if not spec.get("ExcludeLowercase"):
        classes.append(string.ascii_lowercase)
    if not spec.get("ExcludeUppercase"):
        classes.append(string.ascii_uppercase)
    if not spec.get("ExcludeNumbers"):
        classes.append(string.digits)
    if not spec.get("ExcludePunctuation"):
        classes.append(PUNCTUATION)
    if spec.get("IncludeSpace"):
        classes.append(" ")
    classes = ["".join(ch for ch in group if ch not in excluded) for group in classes]
    classes = [group for group in classes if group]
    if not classes:
        raise ValueError("GenerateSecretString excludes every character")
    alphabet = "".join(classes)
    chars = [secrets.choice(alphabet) for _ in range(length)]
    if spec.get("RequireEachIncludedType", True) and length >= len(classes):
        positions = secrets.SystemRandom().sample(range(length), len(classes))
        for position, group in zip(positions, classes, strict=True):
            chars[position] = secrets.choice(group)
    return "".join(chars)


def secret_value(props: dict[str, Any], secret_key: str) -> str | None:
    """The local value of a secret: as CloudFormation would create it, then made usable locally."""
    if "SecretString" in props:
        value = str(props["SecretString"])
    elif "GenerateSecretString" in props:
        spec = props["GenerateSecretString"]
        password = generate_password(spec)
        if spec.get("SecretStringTemplate") and spec.get("GenerateStringKey"):
            data = json.loads(spec["SecretStringTemplate"])
            data[spec["GenerateStringKey"]] = password
            value = json.dumps(data)
        else:
            value = password
    else:
        return None
    return localise_secret(value, secret_key)


def localise_secret(value: str, secret_key: str) -> str:
    """Give the API keys secret (any secret holding ``secret_key``) the local key."""
    data = _json_object(value)
    if data is not None and "secret_key" in data:
        data["secret_key"] = secret_key
        return json.dumps(data)
    return value


def empty_keyring_kind(value: str) -> str | None:
    """``ed25519`` / ``rsa`` / ``hmac`` if ``value`` is a signing keyring secret holding no key yet
    (a verification keyring, ``ed25519-public``, is written when its signing keyring is seeded)."""
    data = _json_object(value)
    if data is not None and data.get("kind") in ("ed25519", "rsa", "hmac") and not data.get("keys"):
        return str(data["kind"])
    return None


def _json_object(value: str) -> dict[str, Any] | None:
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
