"""Emails per second through SendLinkEmailFunction on the local stack, read against a plain SES
SendEmail loop in the same run.

In a child process: moto's server with the template's resources, the functions in worker processes
and the EventBridge rules delivering (``local.stack``, as ``make local`` runs them). N
``SignInLinkMinted`` events, each with a link signed by the stack's ticket keyring and an address,
are put on the stack's bus (PutEvents, 10 a call); the clock stops when moto's SES has recorded N
emails. That is the whole path: the rule, the relay, Lambda-style async invocations in up to
``LOCAL_CONCURRENCY`` execution environments, and in each one the token check, the conditional
claim, the rendering, ``SendEmail`` and the settle. The baseline, on the same server: a loop
sending the same rendered email N times with ``sesv2 send_email`` (one call each, nothing else).

The emulator serves one request at a time, so both sides are bound by it: the ratio says what the
function's extra work (three more AWS calls an email, an invocation, the bus) costs locally, not
what SES's sending quota allows in an account (that quota, 14 emails/s for a new account, is
usually the limit there).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from bench import Figure, Options, benchmark, run_module_child

CHILD_FLAG = "--run-email"
EMAILS = 300
QUICK_EMAILS = 60
URL = "http://127.0.0.1:3998"


def _child(count: int) -> dict[str, Any]:
    from local.emulator import MotoServer, aws_client
    from local.stack import LocalStack

    with MotoServer() as moto:
        stack = LocalStack.build(url=URL, endpoint=moto.endpoint, processes=True)
        try:
            stack.activate()
            stack.emulator_lock = moto.lock
            stack.start_rules()
            return _measure(stack, count, aws_client("events", moto.endpoint), aws_client("sesv2", moto.endpoint))
        finally:
            stack.close()


def _measure(stack: Any, count: int, events: Any, ses: Any) -> dict[str, Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    from local.emulator import REGION, aws_client
    from signin_links import ids
    from signin_links.keyring import HMAC, parse_keyring
    from signin_links.link_email import EmailTemplates, parse_minted
    from signin_links.tickets import sign_ticket

    outbox = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    environment = stack.environments["SendLinkEmailFunction"]
    raw = aws_client("secretsmanager", stack.endpoint).get_secret_value(
        SecretId=environment["TICKET_KEYRING_SECRET_ID"], VersionStage="AWSCURRENT"
    )["SecretString"]
    key = parse_keyring(raw, HMAC).current(time.time())
    now = int(time.time())

    def entry(n: int) -> dict[str, Any]:
        token_id = ids.new_id(ids.SIGN_IN_TOKEN)
        token = sign_ticket(key, sid=token_id, issued_at=now, expires_in_seconds=3600)
        detail = {
            "batch_id": "bench-email",
            "user_id": f"user_{n:06d}",
            "sign_in_token_id": token_id,
            "url": f"{URL}/accept-token?token={token}",
            "expires_at": (now + 3600) * 1000,
            "metadata": {"email": f"user{n}@example.com", "first_name": "Ada"},
        }
        return {
            "Source": "signin-links",
            "DetailType": "SignInLinkMinted",
            "Detail": json.dumps(detail),
            "EventBusName": environment["EVENT_BUS_NAME"],
        }

    def wait_for(total: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(outbox) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(outbox)} of {total} emails after {timeout:.0f} s")
            time.sleep(0.01)

    # Warm up: one email per execution environment the run will use (imports, keyring, clients).
    concurrency = stack.functions["SendLinkEmailFunction"].concurrency
    events.put_events(Entries=[entry(-1 - n) for n in range(concurrency)])
    wait_for(concurrency, 300)

    batch = [entry(n) for n in range(count)]
    started = time.perf_counter()
    for start in range(0, count, 10):
        events.put_events(Entries=batch[start : start + 10])
    put_seconds = time.perf_counter() - started
    wait_for(concurrency + count, 600)
    function_seconds = time.perf_counter() - started

    # Baseline: the same email, sent by a bare loop of SendEmail calls on the same emulator.
    sample = json.loads(batch[0]["Detail"])
    templates = EmailTemplates.load(stack.functions["SendLinkEmailFunction"].spec.source_dir / "templates")
    rendered = templates.render(
        parse_minted({"source": "signin-links", "detail-type": "SignInLinkMinted", "detail": sample}, URL)
    )
    request = {
        "FromEmailAddress": environment["EMAIL_SENDER"],
        "Content": {
            "Simple": {
                "Subject": {"Data": rendered.subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": rendered.text, "Charset": "UTF-8"},
                    "Html": {"Data": rendered.html, "Charset": "UTF-8"},
                },
            }
        },
    }
    started = time.perf_counter()
    for n in range(count):
        ses.send_email(Destination={"ToAddresses": [f"loop{n}@example.com"]}, **request)
    loop_seconds = time.perf_counter() - started
    return {
        "emails": count,
        "function_seconds": function_seconds,
        "put_seconds": put_seconds,
        "loop_seconds": loop_seconds,
        "concurrency": concurrency,
        "outbox": len(outbox),
    }


@benchmark("email", order=60)
def email(options: Options) -> list[Figure]:
    count = QUICK_EMAILS if options.quick else EMAILS
    r: dict[str, Any] = run_module_child(
        "bench.email", "EMAIL", CHILD_FLAG, str(count), env={"POWERTOOLS_LOG_LEVEL": "WARNING"}, timeout=1800
    )
    n = r["emails"]
    note = (
        f"{n:,} SignInLinkMinted events put on the bus ({r['put_seconds']:.2f} s of PutEvents), "
        f"{r['concurrency']} execution environments; {r['outbox']} emails recorded in all"
    )
    return [
        Figure(
            "email",
            "emails per second through SendLinkEmailFunction (bus to SES)",
            n / r["function_seconds"],
            "emails/s",
            baseline="SES SendEmail loop",
            baseline_value=n / r["loop_seconds"],
            note=note,
            detail=r,
        )
    ]


if __name__ == "__main__" and CHILD_FLAG in sys.argv:
    print("EMAIL " + json.dumps(_child(int(sys.argv[sys.argv.index(CHILD_FLAG) + 1]))), flush=True)
