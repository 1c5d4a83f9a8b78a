"""What the local stack tells people once it is up: the banner, printed from the same state it
writes to the state file (``LocalStack.state``), so that the two cannot disagree."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def curl_command(url: str, secret_key: str) -> str:
    """The request of Clerk's guide, pointed at ``url``."""
    body = json.dumps({"user_id": "user_123"})
    return (
        f"curl '{url}/v1/sign_in_tokens' -X POST "
        f"-H {shlex.quote('Authorization: Bearer ' + secret_key)} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )


def rules_text(state: dict[str, Any]) -> str:
    """The template's EventBridge rules: what each delivers locally, and what cannot run here."""
    lines = []
    for rule in state["rules"]:
        pattern = json.dumps(rule["pattern"], separators=(",", ":")) if rule["pattern"] else rule["schedule"]
        for target in rule["targets"]:
            head = f"    {rule['origin']}  bus {rule['bus']}  {pattern}  ->  {target['target']}"
            if not target["local"]:
                lines.append(f"{head}\n      NOT RUN LOCALLY: {target['not_local']}")
            elif "retries" in target:
                failed = target["on_failure"] or "dropped"
                lines.append(f"{head}\n      async invoke, {target['retries']} retries, then {failed}")
            else:
                lines.append(head)
    return "\n".join(lines) or "    (none)"


def event_sources_text(state: dict[str, Any]) -> str:
    """The SQS event source mappings: queue, function, batch and concurrency, or why not run."""
    lines = []
    for item in state["event_sources"]:
        if "not_local" in item:
            lines.append(f"    {item['origin']}\n      NOT RUN LOCALLY: {item['not_local']}")
            continue
        partial = ", partial batch responses" if item["report_batch_item_failures"] else ""
        lines.append(
            f"    {item['origin']}  queue {item['queue']}  ->  {item['function']}\n"
            f"      batches of {item['batch_size']}, {item['local_concurrency']} at once "
            f"(MaximumConcurrency {item['maximum_concurrency']}){partial}"
        )
    return "\n".join(lines) or "    (none)"


def local_text(state: dict[str, Any]) -> str:
    """The local-only pages and commands, and the parameter notes."""
    email = state["parameters"].get("EmailSender")
    lines = [
        f"  Outbox       {state['url']}/_local/outbox"
        + (f"   (email from {email})" if email else "   (delivery by email is off: LOCAL_PARAMETER_EmailSender)"),
        f"  Rotate       make rotate SECRET=<{' | '.join(state['rotations'])}>",
    ]
    lines += [f"  Note         {note}" for note in state["notes"]]
    return "\n".join(lines) + "\n"


def clerk_frontend(url: str) -> dict[str, str]:
    """What clerk-js and @clerk/nextjs need to use this stack's Frontend API: the publishable key of
    its host and, since the local stack speaks http (clerk-js builds ``https://<key's host>``), the
    stack's URL as ``proxyUrl`` (docs/clerk-frontend.md)."""
    # Imported here, not at the top: the domain package's Logger and Metrics read their settings when
    # first imported, which must come after the functions' environment is applied (LocalStack.activate).
    from signin_links.frontend_wire import publishable_key

    return {"publishable_key": publishable_key(urlsplit(url).netloc), "proxy_url": url}


def banner(state: dict[str, Any], state_file: Path) -> str:
    """The banner of the stack whose state is ``state`` (written to ``state_file``)."""
    routes = "\n".join(
        "    {:<6} {}  ->  {}".format(*route["route_key"].split(" ", 1), route["function"]) for route in state["routes"]
    )
    url, endpoint = state["url"], state["moto_endpoint"]
    return f"""
signin-links local stack is up (Ctrl-C stops it)

  API          {url}
  Secret key   {state["secret_key"]}
  Clerk        publishable key {state["clerk_frontend"]["publishable_key"]}  proxyUrl {url}
               (NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY, NEXT_PUBLIC_CLERK_PROXY_URL; clerk-js: data-clerk-proxy-url)
  moto (AWS)   {endpoint}   (AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=testing \
AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={state["region"]})
  State        {state_file}
  Routes
{routes}
  EventBridge rules (put events on the bus with the moto endpoint; `make events` follows the bus)
{rules_text(state)}
  SQS event sources
{event_sources_text(state)}
{local_text(state)}
Mint a sign-in link:

  {state["curl"]}
"""
