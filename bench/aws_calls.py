"""AWS calls per operation, counted on real boto3 clients against moto.

In a child process (a clean import of the handlers): moto's server on loopback, the template's
resources created in it as the local stack creates them (``local.stack``), the handlers imported in
this process (``LocalStack.build`` without worker processes, so the hook below sees every call),
requests sent through the stack's API Gateway emulation (``LocalStack.call``, no HTTP server). Unlike
the local stack, where each function has its own worker processes, both functions share this process
and so one secrets cache: "cold" counts show what the first request of the process read, not a fresh
Lambda's (the warm counts are the contract). A
``before-call`` hook is registered on every botocore client as it is created (ours, and Powertools
Parameters' own), so every API call is counted, per service and operation, once per logical call
(retries are not calls).

The contract counted: the functions' init reads the secrets (API keys, ticket keyring, session
keyring: one read each; in this one process the two functions share Powertools' cache), so their
first requests read none; a mint makes 1 DynamoDB call; an accept makes exactly 1 AWS call, its
conditional write, one TransactWriteItems (the token's conditional update and the session's put;
their audit events come from the table's stream, not from the request); GET/HEAD
of the page never touch DynamoDB. Sessions: a refresh makes exactly 1 call, its conditional
UpdateItem (the rotation of the refresh token with the activity), also when it loses a race to
another tab (the refused write's old image tells it; no read); a sign-out and a revoke 1
conditional write each. Clerk's
Frontend API: a sign-in by ticket makes the accept's one TransactWriteItems and nothing else; the
client, a token (getToken) and touch one read; its sign-out one conditional write; the environment none.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

from bench import Figure, Options, benchmark, run_module_child

CHILD_FLAG = "--count-calls"


# -- the child ---------------------------------------------------------------------------------


def _count_calls() -> dict[str, Any]:
    import botocore.session

    from local.apigw import HttpRequest
    from local.emulator import MotoServer
    from local.environment import apply_environment, union_environment
    from local.stack import LocalStack

    calls: Counter[str] = Counter()
    original_create_client = botocore.session.Session.create_client

    def count(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original_create_client(self, *args, **kwargs)
        client.meta.events.register("before-call", count)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]

    def services(snapshot: Counter[str]) -> dict[str, int]:
        return dict(sorted(snapshot.items()))

    with MotoServer() as moto:
        url = "http://127.0.0.1:3999"
        stack = LocalStack.build(url=url, endpoint=moto.endpoint)
        # What LocalStack.activate does, with the functions' init counted apart from the seeding.
        apply_environment(union_environment(stack.environments))
        stack.seed_keyrings()  # the verification keyring gets the public keys, as on the stack
        results: dict[str, Any] = {}
        calls.clear()
        stack.functions["MintLinkFunction"].initialise()
        stack.functions["AcceptTokenFunction"].initialise()
        results["init of mint and accept"] = {"status": 0, "calls": services(calls)}
        for function in stack.functions.values():
            function.initialise()
        domain = "127.0.0.1:3999"
        auth = [("authorization", f"Bearer {stack.secret_key}"), ("content-type", "application/json")]

        set_cookies: list[str] = []

        def request(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> tuple[int, Any]:
            response, _ = stack.call(HttpRequest(method=method, target=target, headers=headers, body=body), domain)
            set_cookies[:] = [value.split(";", 1)[0] for name, value in response.headers if name == "Set-Cookie"]
            text = response.body.decode("utf-8", "replace") if isinstance(response.body, bytes) else response.body
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

        def measured(label: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> Any:
            calls.clear()
            status, answer = request(method, target, headers, body)
            results[label] = {"status": status, "calls": services(calls)}
            return answer

        mint_body = json.dumps({"user_id": "user_calls"}).encode()
        measured("mint (first request)", "POST", "/v1/sign_in_tokens", auth, mint_body)
        minted = [measured("mint (warm)", "POST", "/v1/sign_in_tokens", auth, mint_body)]
        minted += [request("POST", "/v1/sign_in_tokens", auth, mint_body)[1] for _ in range(3)]
        measured("revoke (warm)", "POST", f"/v1/sign_in_tokens/{minted[3]['id']}/revoke", auth, b"")
        accept_headers = [("content-type", "application/json"), ("accept", "application/json")]
        measured(
            "accept GET page (cold)", "GET", f"/accept-token?token={minted[0]['token']}", [("accept", "text/html")]
        )
        measured("accept HEAD", "HEAD", f"/accept-token?token={minted[0]['token']}", [])
        body = json.dumps({"token": minted[0]["token"]}).encode()
        measured("accept (first POST)", "POST", "/accept-token", accept_headers, body)
        body = json.dumps({"token": minted[1]["token"]}).encode()
        session = measured("accept (warm)", "POST", "/accept-token", accept_headers, body)
        cookie = [("cookie", "; ".join(set_cookies))]
        measured("accept again (already used)", "POST", "/accept-token", accept_headers, body)
        measured("jwks (warm)", "GET", "/.well-known/jwks.json", [])
        # --- sessions ---
        session_id = session["created_session_id"]
        measured("refresh (warm)", "POST", "/session/refresh", accept_headers + cookie)
        # Another tab with the same (now previous) refresh token, within RefreshReuseGraceSeconds.
        measured("refresh (warm, a race lost to another tab)", "POST", "/session/refresh", accept_headers + cookie)
        measured("sessions list (first request)", "GET", "/v1/sessions?user_id=user_calls", auth)
        measured("sessions list (warm)", "GET", "/v1/sessions?user_id=user_calls", auth)
        measured("session token (warm)", "POST", f"/v1/sessions/{session_id}/tokens", auth, b"{}")
        measured("sign-out (warm)", "POST", "/sign-out", accept_headers + cookie, b"{}")
        other = json.dumps({"token": minted[2]["token"]}).encode()
        revoked = request("POST", "/accept-token", accept_headers, other)[1]["created_session_id"]
        measured("session revoke (warm)", "POST", f"/v1/sessions/{revoked}/revoke", auth, b"")
        # --- Clerk's Frontend API (clerk-js): what a browser's sign-in by ticket and its open tab cost ---
        form = [("content-type", "application/x-www-form-urlencoded")]
        query = "?__clerk_api_version=2025-11-10&_clerk_js_version=6.40.0"
        measured("frontend environment (warm)", "GET", f"/v1/environment{query}", [])
        ticket = request("POST", "/v1/sign_in_tokens", auth, mint_body)[1]["token"]
        sign_in_body = f"strategy=ticket&ticket={ticket}&locale=en-US".encode()
        signed_in = measured("frontend sign-in (warm)", "POST", f"/v1/client/sign_ins{query}", form, sign_in_body)
        client = [("cookie", "; ".join(set_cookies))]
        frontend_session = signed_in["response"]["created_session_id"]
        measured("frontend sign-in again (already used)", "POST", f"/v1/client/sign_ins{query}", form, sign_in_body)
        measured("frontend client (warm)", "GET", f"/v1/client{query}", client)
        tokens = f"/v1/client/sessions/{frontend_session}/tokens{query}"
        measured("frontend token (warm)", "POST", tokens, form + client, b"organization_id=")
        measured("frontend touch (warm)", "POST", f"/v1/client/sessions/{frontend_session}/touch{query}", form + client)
        measured("frontend sign-out (warm)", "POST", f"/v1/client/sessions{query}&_method=DELETE", form + client)
    return results


# -- the benchmark -----------------------------------------------------------------------------


def _calls(result: dict[str, Any], service: str | None, operation: str | None = None) -> float:
    return float(
        sum(
            count
            for key, count in result["calls"].items()
            if service in (None, key.split(".")[0]) and (operation is None or key.split(".")[1] == operation)
        )
    )


@benchmark("aws calls", order=30)
def aws_calls(options: Options) -> list[Figure]:
    results: dict[str, Any] = run_module_child("bench.aws_calls", "CALLS", CHILD_FLAG)
    contract = "contract"

    def figure(label: str, service: str | None, expected: int, operation: str | None = None, note: str = "") -> Figure:
        result = results[label]
        value = _calls(result, service, operation)
        name = f"{label}: {service or 'AWS'}" + (f" {operation}" if operation else "") + " calls"
        status_note = f"HTTP {result['status']}" if result["status"] else "no request"
        return Figure(
            "aws calls",
            name,
            value,
            "calls",
            contract if expected else None,
            float(expected) if expected else None,
            target=f"== {expected}",
            note=f"{status_note}; {note}".rstrip("; "),
            detail={"all_calls": result["calls"]},
        )

    return [
        figure("init of mint and accept", "secretsmanager", 3, note="API keys, ticket and session keyrings, once each"),
        figure("init of mint and accept", "dynamodb", 0),
        figure("mint (first request)", "secretsmanager", 0, note="read at init"),
        figure("mint (first request)", None, 1, note="its PutItem"),
        figure("mint (warm)", "dynamodb", 1),
        figure("mint (warm)", "secretsmanager", 0),
        figure("revoke (warm)", None, 1, note="its conditional UpdateItem; the event comes from the stream"),
        figure("accept (first POST)", None, 1, note="keyrings read and the key parsed at init"),
        figure("accept (warm)", None, 1, note="the conditional write; the audit event comes from the stream"),
        figure("accept (warm)", "dynamodb", 1, "TransactWriteItems", note="the token's update and the session's put"),
        figure("accept (warm)", "events", 0),
        figure("accept (warm)", "secretsmanager", 0),
        figure("accept again (already used)", None, 1, note="the failed conditional write tells why"),
        figure("accept GET page (cold)", "dynamodb", 0),
        figure("accept HEAD", "dynamodb", 0),
        figure("jwks (warm)", "dynamodb", 0),
        figure("refresh (warm)", "dynamodb", 1, "UpdateItem", note="the rotation and the activity, conditional"),
        figure("refresh (warm)", None, 1, note="no read: the refresh token proves itself"),
        figure("refresh (warm, a race lost to another tab)", None, 1, note="the refused write's old image tells it"),
        figure("sign-out (warm)", "dynamodb", 1, "UpdateItem", note="one conditional write, no read"),
        figure("sign-out (warm)", None, 1),
        figure("session revoke (warm)", "dynamodb", 1, "UpdateItem"),
        figure("session revoke (warm)", None, 1),
        figure("sessions list (warm)", "dynamodb", 1, "Query"),
        figure("sessions list (warm)", None, 1),
        figure("session token (warm)", "dynamodb", 1, "GetItem"),
        figure("session token (warm)", None, 1),
        figure("frontend environment (warm)", None, 0, note="no AWS call: the instance's settings"),
        figure("frontend sign-in (warm)", None, 1, note="the accept's one write, nothing else"),
        figure(
            "frontend sign-in (warm)",
            "dynamodb",
            1,
            "TransactWriteItems",
            note="the token's update and the session's put",
        ),
        figure("frontend sign-in again (already used)", None, 1, note="the failed conditional write tells why"),
        figure("frontend client (warm)", "dynamodb", 1, "GetItem", note="the session the __Host-client cookie names"),
        figure("frontend client (warm)", None, 1),
        figure("frontend token (warm)", "dynamodb", 1, "GetItem", note="getToken(): at most one read"),
        figure("frontend token (warm)", None, 1),
        figure("frontend touch (warm)", None, 1, note="the read; last_active_at is written at most once a minute"),
        figure("frontend sign-out (warm)", "dynamodb", 1, "UpdateItem", note="one conditional write, no read"),
        figure("frontend sign-out (warm)", None, 1),
    ]


if __name__ == "__main__" and CHILD_FLAG in sys.argv:
    print("CALLS " + json.dumps(_count_calls()), flush=True)
