"""The template parameters a local stack deploys with: ``LOCAL_PARAMETER_<Name>`` overrides, the
local defaults, and a note for each override CloudFormation would refuse."""

from __future__ import annotations

from typing import Any

from local.intrinsics import LOCAL_DEPLOY

PARAMETER_PREFIX = "LOCAL_PARAMETER_"
LOCAL_EMAIL_SENDER = "signin-links@example.com"


def local_parameters(template: dict[str, Any], url: str, env: dict[str, str]) -> dict[str, str]:
    """Parameter overrides for the local stack: ``LOCAL_PARAMETER_<Name>`` from ``env``, then the
    local defaults (the stack's own origin allowed for redirects; links point at the local URL)."""
    declared = template.get("Parameters") or {}
    overrides = {
        name[len(PARAMETER_PREFIX) :]: value for name, value in env.items() if name.startswith(PARAMETER_PREFIX)
    }
    for name, value in LOCAL_DEPLOY.items():  # Stage=dev unless LOCAL_PARAMETER_Stage says otherwise
        if name in declared:
            overrides.setdefault(name, value)
    # Unless set (even to "", as a first deploy has it: links then come from AcceptBaseUrlParameter).
    if "AcceptBaseUrl" in declared and "AcceptBaseUrl" not in overrides:
        overrides["AcceptBaseUrl"] = str(declared["AcceptBaseUrl"].get("Default", "")) or url
    if "AllowedRedirectOrigins" in declared:
        current = overrides.get("AllowedRedirectOrigins", str(declared["AllowedRedirectOrigins"].get("Default", "")))
        origins = [item.strip() for item in current.split(",") if item.strip()]
        if url not in origins:
            origins.append(url)
        overrides["AllowedRedirectOrigins"] = ",".join(origins)
    # Delivery by email is on locally (moto's SES records each message; /_local/outbox shows them);
    # LOCAL_PARAMETER_EmailSender= (empty) turns it off.
    if "EmailSender" in declared and "EmailSender" not in overrides:
        overrides["EmailSender"] = LOCAL_EMAIL_SENDER
    return overrides


def parameter_notes(template: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """Overrides outside a Number parameter's MinValue/MaxValue: CloudFormation refuses them, the
    local stack takes them (to watch a rotation in a minute, say) and says so."""
    notes = []
    declared = template.get("Parameters") or {}
    for name, value in parameters.items():
        spec = declared.get(name) or {}
        if spec.get("Type") != "Number":
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        low, high = float(spec.get("MinValue", number)), float(spec.get("MaxValue", number))
        if not low <= number <= high:
            bound = "MinValue" if number < low else "MaxValue"
            notes.append(f"{name}={value} is past the template's {bound} {spec[bound]}: CloudFormation would refuse it")
    return notes
