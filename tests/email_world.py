"""The email function's world in memory, for the property tests of delivery by email
(``tests/robustness/test_link_email_inputs.py``, ``test_email_queue_batches.py``): fakes of its
store, SES client and publisher, and generators of SignInLinkMinted events, addresses, metadata and
SES answers of any shape.

``FakeStore`` keeps the methods of ``store.EmailMarkers`` with their conditions, in memory, so that
hypothesis can try thousands of shapes quickly; ``tests/robustness/test_email_markers_fake.py`` runs
the same operations on both and holds them equal.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from signin_links.config import Settings
from signin_links.errors import unavailable
from signin_links.keyring import ED25519, Keyring, generate_key
from signin_links.link_email import REJECTING_CODES, THROTTLING_CODES, EmailTemplates, LinkEmails
from signin_links.models import EMAIL_FAILED, EMAIL_SENDING, EMAIL_UNKNOWN, EmailMarker
from signin_links.tickets import sign_ticket

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = EmailTemplates.load(ROOT / "functions" / "send_link_email" / "templates")
BASE = "https://links.example.com"
NOW = 1_750_000_000
KEY = generate_key(ED25519, now=NOW - 10)
KEYRING = Keyring(kind=ED25519, keys=(KEY,)).public()  # the email function holds public keys only
# The mailer's property tests: as many examples as the Hypothesis profile says (tests/conftest.py).
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
SETTINGS = Settings(table_name="t", accept_base_url=BASE, email_sender="links@example.com", email_sender_name="Ex")

# --- Fakes ------------------------------------------------------------------------------------------


@dataclass
class FakeStore:
    """The methods of EmailMarkers, with their conditions, in memory."""

    markers: dict[str, EmailMarker] = field(default_factory=dict)
    writes: int = 0

    def claim_email(self, token_id: str, request_id: str, now_ms: int, ttl: int) -> EmailMarker | None:
        return self._put(EmailMarker(token_id, EMAIL_SENDING, request_id, now_ms, now_ms))

    def record_email_failure(
        self, token_id: str, request_id: str, reason: str, now_ms: int, ttl: int
    ) -> EmailMarker | None:
        return self._put(EmailMarker(token_id, EMAIL_FAILED, request_id, now_ms, now_ms, reason=reason))

    def claim_emails(self, claims: list[tuple[str, str, int]], now_ms: int) -> bool:
        """All or nothing, as the transaction."""
        self.writes += len(claims)
        if any(token_id in self.markers for token_id, _, _ in claims):
            return False
        for token_id, claimer, _ in claims:
            self.markers[token_id] = EmailMarker(token_id, EMAIL_SENDING, claimer, now_ms, now_ms)
        return True

    def record_sent(self, markers: list[tuple[EmailMarker, int]]) -> None:
        for marker, _ in markers:
            held = self.markers.get(marker.token_id)
            # What the unconditional write relies on: the claimer's own "sending" marker is there.
            assert held is not None
            assert held.status == EMAIL_SENDING
            assert held.request_id == marker.request_id
            self.writes += 1
            self.markers[marker.token_id] = replace(marker, announced=False)  # a new marker: nothing announced yet

    def _put(self, marker: EmailMarker) -> EmailMarker | None:
        self.writes += 1
        if marker.token_id in self.markers:
            return self.markers[marker.token_id]
        self.markers[marker.token_id] = marker
        return None

    def settle_email(
        self, token_id: str, request_id: str, status: str, now_ms: int, *, message_id: str = "", reason: str = ""
    ) -> bool:
        self.writes += 1
        held = self.markers.get(token_id)
        if held is None or held.status != EMAIL_SENDING or held.request_id != request_id:
            return False
        self.markers[token_id] = replace(held, status=status, message_id=message_id, reason=reason, updated_at=now_ms)
        return True

    def take_over_email(self, token_id: str, claimed_by: str, request_id: str, now_ms: int) -> bool:
        self.writes += 1
        held = self.markers.get(token_id)
        if held is None or held.status != EMAIL_SENDING or held.request_id != claimed_by:
            return False
        self.markers[token_id] = replace(
            held, status=EMAIL_UNKNOWN, request_id=request_id, reason="outcome_unknown", updated_at=now_ms
        )
        return True

    def sent_to(self, token_id: str) -> EmailMarker | None:
        marker = self.markers.get(token_id)
        return marker if marker is not None and marker.status == "sent" and marker.address else None

    def release_email(self, token_id: str, request_id: str) -> None:
        self.writes += 1
        held = self.markers.get(token_id)
        if held is not None and held.status == EMAIL_SENDING and held.request_id == request_id:
            del self.markers[token_id]

    def mark_email_announced(self, token_id: str) -> None:
        self.writes += 1
        if token_id not in self.markers:  # the update's attribute_exists(pk) fails: service_unavailable
            raise unavailable("DynamoDB")
        self.markers[token_id] = replace(self.markers[token_id], announced=True)


@dataclass
class FakeSES:
    """SendEmail that answers with ``script`` (an exception per call, ``None`` for success), then success."""

    script: list[BaseException | None] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the email queue sends from threads

    def send_email(self, **request: Any) -> dict[str, Any]:
        with self.lock:
            self.requests.append(request)
            outcome = self.script.pop(0) if self.script else None
            if outcome is None:
                self.accepted.append(request)
                return {"MessageId": f"msg-{len(self.accepted)}"}
        raise outcome


@dataclass
class FakePublisher:
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish_one(self, detail_type: str, detail: dict[str, Any]) -> bool:
        self.published.append((detail_type, detail))
        return True


@dataclass
class World:
    store: FakeStore = field(default_factory=FakeStore)
    ses: FakeSES = field(default_factory=FakeSES)
    publisher: FakePublisher = field(default_factory=FakePublisher)

    def mailer(self, settings: Settings = SETTINGS, **options: Any) -> LinkEmails:
        """The mailer on this world's fakes; ``options`` add to or replace its keyword arguments."""
        arguments: dict[str, Any] = {"clock": lambda: float(NOW), **options}
        return LinkEmails(
            settings,
            markers=self.store,  # type: ignore[arg-type]
            ses=self.ses,
            publisher=self.publisher,  # type: ignore[arg-type]
            templates=TEMPLATES,
            ticket_keyring=lambda: KEYRING,
            **arguments,
        )


# --- Generators -------------------------------------------------------------------------------------

odd_text = st.sampled_from(
    [
        "",
        " ",
        "<script>alert(1)</script>",
        '" onmouseover="x',
        "' onclick='y",
        "&amp;&lt;",
        "\r\nBcc: eve@example.com",
        "\x00\x07\x1b",
        "\ud800",
        "\udfff lone",
        "\u2028\u2029",
        "\uff21\uff22\uff23\uff1c\uff1e",  # fullwidth ABC<>
        "名前",
        "😀" * 3,
        "$url ${url} $$",
        "x" * 5000,
    ]
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([10**4000, -(10**4299)])  # JSON parsing refuses more than 4,300 digits
    | st.floats(allow_nan=False)
    | st.text(max_size=60)
    | odd_text
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
)
addresses = (
    st.sampled_from(
        [
            "ada@example.com",
            "ADA@Example.COM",
            "ada@bücher.example",
            "ada@[127.0.0.1]",
            "ada@localhost",
            "ada@example.com.",
            "ada+tag@sub.example.org",
            "ada@xn--bcher-kva.example",
            "ada@example.com\n",
            "ada@ex\u0000ample.com",
            "ada@ex\ud800ample.com",
            "ada\uff20example.com",
            "ada@\uff45xample.com",
            "ada@" + "a" * 64 + ".com",
            "<ada@example.com>",
            "ada@example.com;eve@example.com",
        ]
    )
    | st.text(max_size=80)
    | st.emails()
    | json_values
)
metadata = st.fixed_dictionaries(
    {}, optional={"email": addresses, "first_name": st.text(max_size=50) | odd_text | json_values}
) | st.dictionaries(st.text(max_size=12), json_values, max_size=4)


def token_for(token_id: str, *, issued_at: int = NOW, lifetime: int = 3600) -> str:
    return sign_ticket(KEY, sid=token_id, issued_at=issued_at, expires_in_seconds=lifetime)


def event_of(detail: Any) -> dict[str, Any]:
    return {"source": "signin-links", "detail-type": "SignInLinkMinted", "detail": detail}


def valid_detail(token_id: str, meta: Any) -> dict[str, Any]:
    return {
        "batch_id": "wave",
        "user_id": "user_1",
        "sign_in_token_id": token_id,
        "url": f"{BASE}/accept-token?token={token_for(token_id)}",
        "expires_at": (NOW + 3600) * 1000,
        "metadata": meta,
    }


token_ids = st.integers(min_value=0, max_value=10**6).map(lambda n: f"sit_{n:022d}")
field_names = ["batch_id", "user_id", "sign_in_token_id", "url", "expires_at", "metadata", "renewal_of"]


@st.composite
def minted_events(draw: st.DrawFn) -> dict[str, Any]:
    """Valid events with their metadata of any shape, some fields replaced by anything, or anything at all."""
    detail: Any = valid_detail(draw(token_ids), draw(metadata | json_values))
    kind = draw(st.sampled_from(["valid", "mutated", "arbitrary"]))
    if kind == "mutated":
        for name in draw(st.lists(st.sampled_from(field_names), max_size=3, unique=True)):
            if draw(st.booleans()):
                detail.pop(name, None)
            else:
                detail[name] = draw(json_values | odd_text | token_ids)
    elif kind == "arbitrary":
        detail = draw(json_values)
    event = event_of(detail)
    if draw(st.integers(0, 9)) == 0:
        event[draw(st.sampled_from(["source", "detail-type"]))] = draw(json_values)
    return event


def ses_exception(kind: str, code: str) -> BaseException | None:
    if kind == "ok":
        return None
    if kind == "read-timeout":
        return ReadTimeoutError(endpoint_url="https://email")
    if kind == "connect-timeout":
        return ConnectTimeoutError(endpoint_url="https://email")
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, "SendEmail")


KNOWN_CODES = [*sorted(THROTTLING_CODES | REJECTING_CODES), "SendingPausedException", "InternalFailure"]
codes = st.sampled_from(KNOWN_CODES) | st.text(max_size=30)
answers = st.tuples(st.sampled_from(["client", "client", "client", "ok", "read-timeout", "connect-timeout"]), codes)
