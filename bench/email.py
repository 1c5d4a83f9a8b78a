"""Emails per second through the email queue on the local stack, read against a plain SES SendEmail
loop in the same run; and the pace: emails per second against the account's SES rate.

In a child process: moto's server with the template's resources, the functions in worker processes,
the EventBridge rules and the SQS event source mappings running (``local.stack``, as ``make local``
runs them). N ``SignInLinkMinted`` events, each with a link signed by the stack's ticket keyring and
an address, are put on the stack's bus (PutEvents, 10 a call); the clock stops when moto's SES has
recorded N emails. That is the whole path: the ``LinkMintedRule`` to the email queue, the event
source mapping's batches (``EmailBatchSize``, ``EmailMaximumConcurrency`` invocations at once, the
template's defaults), and in each batch the token checks, the rendering, one claim transaction, one
``SendEmail`` per email (several in flight), one write of the "sent" markers and the deletes. The
baseline, on the same server: a loop sending the same rendered email N times with ``sesv2
send_email`` (one call each, nothing else). Three rounds, each the path then the loop; each side's
figure is its least disturbed round (on a shared machine other work only ever adds time), every
round in the detail.

The first figure runs with an SES rate far above what the emulator can serve (the pace never
waits: the figure is the machinery's cost). The second runs with moto's SES at a fixed rate that
refuses any excess, as SES does, and reads the emails per second against that rate, with SES's
refusals and the messages returned to the queue (both should be 0: the pace keeps under the rate).

The emulator serves one request at a time and shares the machine's cores with the worker
processes: the ratio says what the function's extra work costs locally, not what SES's quota allows
in an account (that quota, 14 emails/s for a new account, is usually the limit there: see the pace).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from bench import Figure, Options, benchmark, run_module_child

CHILD_FLAG = "--run-email"
EMAILS = 300
QUICK_EMAILS = 60
PACE_RATE = 20  # emails/s moto's SES takes in the pace run (a small production account)
PACE_EMAILS = 200
QUICK_PACE_EMAILS = 60
UNBOUNDED_RATE = 100_000
ROUNDS = 3  # of the path and the loop, interleaved; each side's least disturbed one counts
URL = "http://127.0.0.1:3998"


def _child(count: int, rate: int) -> dict[str, Any]:
    from local.emulator import MotoServer, aws_client
    from local.stack import LocalStack

    with MotoServer() as moto:
        env = {**os.environ, "LOCAL_SES_MAX_SEND_RATE": str(rate), "LOCAL_SES_MAX_24_HOUR_SEND": "10000000"}
        stack = LocalStack.build(url=URL, endpoint=moto.endpoint, processes=True, env=env)
        try:
            stack.activate()
            stack.emulator_lock = moto.lock
            stack.start_rules()
            stack.start_event_sources()
            events, ses = aws_client("events", moto.endpoint), aws_client("sesv2", moto.endpoint)
            return _measure(stack, count, events, ses, loop=rate == UNBOUNDED_RATE)
        finally:
            stack.close()


def _measure(stack: Any, count: int, events: Any, ses: Any, *, loop: bool) -> dict[str, Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    from local.account import REGION
    from local.emulator import aws_client
    from local.ses_quota import SES_QUOTA
    from signin_links import ids
    from signin_links.keyring import ED25519, parse_keyring
    from signin_links.link_email import EmailTemplates, parse_minted
    from signin_links.link_email.ses import send_email_request
    from signin_links.tickets import sign_ticket

    outbox = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    environment = stack.environments["SendLinkEmailFunction"]
    # The links are signed as the mint signs them (the email function itself holds public keys only).
    raw = aws_client("secretsmanager", stack.endpoint).get_secret_value(
        SecretId=stack.environments["MintLinkFunction"]["TICKET_SIGNING_KEYRING_SECRET_ID"], VersionStage="AWSCURRENT"
    )["SecretString"]
    key = parse_keyring(raw, ED25519).current(time.time())
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
    (poller,) = stack.pollers
    concurrency = poller.concurrency
    events.put_events(Entries=[entry(-1 - n) for n in range(concurrency)])
    wait_for(concurrency, 300)
    while poller.stats.deleted < concurrency:
        time.sleep(0.01)
    throttled_before, stats_before = SES_QUOTA.throttled, (poller.stats.invocations, poller.stats.returned)

    # Baseline: the same email, sent by a bare loop of SendEmail calls on the same emulator, each
    # the request the function makes (link_email.ses: its tag and configuration set too).
    templates = EmailTemplates.load(stack.functions["SendLinkEmailFunction"].spec.source_dir / "templates")
    sample = json.loads(entry(0)["Detail"])
    link = parse_minted({"source": "signin-links", "detail-type": "SignInLinkMinted", "detail": sample}, URL)
    rendered = templates.render(link)

    def request(to_address: str) -> dict[str, Any]:
        return send_email_request(
            rendered,
            from_address=environment["EMAIL_SENDER"],
            to_address=to_address,
            sign_in_token_id=link.token_id,
            configuration_set=environment.get("EMAIL_CONFIGURATION_SET", ""),
        )

    # Rounds, each the path then the loop: on a shared machine other work only ever adds time, so
    # each side's figure is its least disturbed round (every round is in the detail).
    rounds: list[dict[str, float]] = []
    sent = concurrency
    for number in range(ROUNDS if loop else 1):
        batch = [entry(number * count + n) for n in range(count)]
        started = time.perf_counter()
        for start in range(0, count, 10):
            events.put_events(Entries=batch[start : start + 10])
        put_seconds = time.perf_counter() - started
        sent += count
        wait_for(sent, 600)
        function_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for n in range(count if loop else 0):
            ses.send_email(**request(f"loop{number}.{n}@example.com"))
        loop_seconds = time.perf_counter() - started
        sent += count if loop else 0
        rounds.append({"function_seconds": function_seconds, "put_seconds": put_seconds, "loop_seconds": loop_seconds})
    ses_throttled = SES_QUOTA.throttled - throttled_before
    invocations, returned = poller.stats.invocations - stats_before[0], poller.stats.returned - stats_before[1]
    sqs = aws_client("sqs", stack.endpoint)
    dead_letters = int(
        sqs.get_queue_attributes(
            QueueUrl=stack.resources.ref("EmailDeadLetterQueue"), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    best = min(rounds, key=lambda r: r["function_seconds"])
    return {
        "emails": count,
        "rounds": rounds,
        "function_seconds": best["function_seconds"],
        "put_seconds": best["put_seconds"],
        "loop_seconds": min(r["loop_seconds"] for r in rounds),
        "concurrency": concurrency,
        "batch_size": poller.source.batch_size,
        "ses_rate": SES_QUOTA.max_send_rate,
        "outbox": len(outbox),
        "invocations": invocations,
        "returned": returned,
        "ses_throttled": ses_throttled,
        "dead_letters": dead_letters,
    }


def _run(count: int, rate: int) -> dict[str, Any]:
    env = {"POWERTOOLS_LOG_LEVEL": "WARNING"}
    result: dict[str, Any] = run_module_child(
        "bench.email", "EMAIL", CHILD_FLAG, str(count), str(rate), env=env, timeout=1800
    )
    return result


def _note(r: dict[str, Any]) -> str:
    rounds = len(r["rounds"])
    return (
        f"{r['emails']:,} SignInLinkMinted events put on the bus ({r['put_seconds']:.2f} s of PutEvents)"
        f"{f', best of {rounds} rounds' if rounds > 1 else ''}; "
        f"batches of {r['batch_size']}, {r['concurrency']} at once, {r['invocations']} invocations; "
        f"{r['returned']} messages returned to the queue, {r['ses_throttled']} SendEmail refused by SES, "
        f"{r['dead_letters']} in the DLQ"
    )


@benchmark("email", order=60)
def email(options: Options) -> list[Figure]:
    r = _run(QUICK_EMAILS if options.quick else EMAILS, UNBOUNDED_RATE)
    paced = _run(QUICK_PACE_EMAILS if options.quick else PACE_EMAILS, PACE_RATE)
    return [
        Figure(
            "email",
            "emails per second through the email queue (bus to SES)",
            r["emails"] / r["function_seconds"],
            "emails/s",
            baseline="SES SendEmail loop",
            baseline_value=r["emails"] / r["loop_seconds"],
            target=">= 0.5x",
            note=_note(r),
            detail=r,
        ),
        Figure(
            "email",
            f"emails per second paced to an SES rate of {PACE_RATE}/s",
            paced["emails"] / paced["function_seconds"],
            "emails/s",
            baseline="the account's SES rate",
            baseline_value=float(PACE_RATE),
            target="<= 1x, 0 refused",
            note=_note(paced),
            detail=paced,
        ),
    ]


if __name__ == "__main__" and CHILD_FLAG in sys.argv:
    at = sys.argv.index(CHILD_FLAG)
    print("EMAIL " + json.dumps(_child(int(sys.argv[at + 1]), int(sys.argv[at + 2]))), flush=True)
