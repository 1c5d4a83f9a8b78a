"""Concurrent requests to the local stack never see each other's data.

Many browsers accepting their own links at the same moment must each get the session of their own
token: never another user's session (a cross-request leak) and never "already used" for a link
nobody else had. Found by bench/throughput: Powertools keeps the current event on the resolver
*class* (``BaseRouter.current_event``), shared by every copy of a handler module in one process.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt

from tests.e2e.conftest import LocalStackHandle

USERS = 200
CLIENTS = 8


def test_concurrent_accepts_each_get_their_own_session(local_stack: LocalStackHandle) -> None:
    with local_stack.client() as api:
        minted = [api.post("/v1/sign_in_tokens", json={"user_id": f"user_iso_{n}"}).json() for n in range(USERS)]

    def accept(link: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, Any]]:
        with httpx.Client(base_url=local_stack.base_url, timeout=30) as client:
            response = client.post(
                "/accept-token", json={"token": link["token"]}, headers={"Accept": "application/json"}
            )
            return link, response.status_code, response.json()

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(accept, minted))
    problems = []
    for link, status, body in results:
        if status != 200:
            problems.append(f"{link['user_id']}: {status} {body.get('errors', [{}])[0].get('code')}")
            continue
        claims = jwt.decode(body["session_token"], options={"verify_signature": False})
        if body["user_id"] != link["user_id"] or claims["sub"] != link["user_id"]:
            problems.append(f"{link['user_id']} got the session of {claims['sub']}")
    assert not problems, problems
    statuses = {local_stack.item(link["id"])["status"]["S"] for link in minted}  # type: ignore[index]
    assert statuses == {"accepted"}
