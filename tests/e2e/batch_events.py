"""A batch event put on a running local stack's bus, as a producer puts it (``events/mint_batch.json``'s
source and detail-type), for the template's ``MintBatch`` rule to deliver to the mint."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import ROOT, LocalStackHandle


def put_batch(stack: LocalStackHandle, detail: dict[str, Any]) -> str:
    """Put one batch event with ``detail`` on the stack's bus; its event id."""
    template = json.loads((ROOT / "events" / "mint_batch.json").read_text())
    entry = {
        "Source": template["source"],
        "DetailType": template["detail-type"],
        "Detail": json.dumps(detail),
        "EventBusName": stack.env("MintLinkFunction")["EVENT_BUS_NAME"],
    }
    result = stack.aws("events").put_events(Entries=[entry])["Entries"][0]
    assert "EventId" in result, result
    return str(result["EventId"])
