"""An in-memory AWS at botocore's HTTP layer, for measuring our own CPU.

Installed by replacing ``URLLib3Session.send``: every request is still serialised, signed and its
answer parsed by botocore, exactly as on Lambda; only the network and the service are replaced.
Enough of Secrets Manager (GetSecretValue), DynamoDB (PutItem, UpdateItem with ``SET``, GetItem,
BatchWriteItem, TransactWriteItems of Put and Update) and EventBridge (PutEvents) for the
handlers' paths. Conditions are not evaluated: this fake measures the client side, it does not
check the service's semantics (moto and the integration tests do that).

Standalone on purpose (stdlib and botocore only): the cold-start child loads it by file path after
its timed imports, without importing the ``bench`` package.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from typing import Any

_ASSIGNMENT = re.compile(r"\s*(#?[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(:[A-Za-z0-9_]+)\s*")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        yield self._body


class FakeAws:
    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = dict(secrets)
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self._original_send: Any = None

    # -- installation ---------------------------------------------------------------------------

    def install(self) -> FakeAws:
        from botocore.httpsession import URLLib3Session

        fake = self
        self._original_send = URLLib3Session.send

        def send(session: Any, request: Any) -> Any:
            return fake.answer(request)

        URLLib3Session.send = send  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        from botocore.httpsession import URLLib3Session

        if self._original_send is not None:
            URLLib3Session.send = self._original_send  # type: ignore[method-assign]
            self._original_send = None

    # -- the services ---------------------------------------------------------------------------

    def answer(self, request: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        operation = target.rsplit(".", 1)[-1]
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        params = json.loads(body or b"{}")
        self.calls[operation] += 1
        handler = getattr(self, f"_{operation}", None)
        if handler is None:
            status, payload = 400, {"__type": "UnknownOperationException", "message": operation}
        else:
            status, payload = handler(params)
        data = json.dumps(payload).encode()
        headers = {"content-type": "application/x-amz-json-1.1", "x-amzn-requestid": str(uuid.uuid4())}
        return AWSResponse(request.url, status, headers, _Raw(data))

    def _GetSecretValue(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        secret_id = params["SecretId"]
        if secret_id not in self.secrets:
            return 400, {"__type": "ResourceNotFoundException", "message": "no such secret"}
        return 200, {
            "ARN": secret_id,
            "Name": secret_id.rsplit(":", 1)[-1],
            "SecretString": self.secrets[secret_id],
            "VersionId": "00000000-0000-0000-0000-000000000001",
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1700000000,
        }

    def _PutItem(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        item = params["Item"]
        self.items[item["pk"]["S"]] = item
        return 200, {}

    def _BatchWriteItem(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        for requests in params["RequestItems"].values():
            for request in requests:
                item = request.get("PutRequest", {}).get("Item")
                if item:
                    self.items[item["pk"]["S"]] = item
        return 200, {"UnprocessedItems": {}}

    def _GetItem(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        item = self.items.get(params["Key"]["pk"]["S"])
        return 200, ({"Item": item} if item else {})

    def _UpdateItem(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key = params["Key"]["pk"]["S"]
        item = dict(self.items.get(key) or params["Key"])
        names = params.get("ExpressionAttributeNames", {})
        values = params.get("ExpressionAttributeValues", {})
        expression = params.get("UpdateExpression", "")
        if expression.upper().startswith("SET "):
            for assignment in expression[4:].split(","):
                match = _ASSIGNMENT.fullmatch(assignment)
                if match:
                    name, value = match.groups()
                    item[names.get(name, name)] = values[value]
        self.items[key] = item
        return 200, {"Attributes": item}

    def _TransactWriteItems(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        for action in params.get("TransactItems", []):
            if "Put" in action:
                self._PutItem(action["Put"])
            elif "Update" in action:
                self._UpdateItem(action["Update"])
        return 200, {}

    def _PutEvents(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        entries = params.get("Entries", [])
        return 200, {"FailedEntryCount": 0, "Entries": [{"EventId": str(uuid.uuid4())} for _ in entries]}
