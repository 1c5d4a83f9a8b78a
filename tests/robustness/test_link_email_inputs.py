"""Property tests of delivery by email (``signin_links.link_email``): SignInLinkMinted events of any
shape, addresses of any shape, metadata of any shape in the templates, and any SES error.

The mailer runs against in-memory fakes of its store, SES client and publisher (the store's
conditional writes mirrored exactly), so hypothesis can try thousands of shapes quickly; the same
paths run on moto in ``tests/integration/test_link_email.py``.

Invariants: nothing but ``service_unavailable`` ever leaves ``deliver`` (and only when nothing was
sent); SES is called at most once per token across any number of deliveries; what reaches SES is
one ASCII address, a one-line subject, strictly encodable UTF-8, and HTML in which no value added a
tag or an attribute; an ignored event writes, sends and publishes nothing.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from signin_links.config import ConfigError, Settings
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.keyring import ED25519, Keyring, generate_key
from signin_links.link_email import (
    REJECTING_CODES,
    THROTTLING_CODES,
    EmailTemplates,
    LinkEmails,
    MintedLink,
    PermanentFailure,
    recipient,
)
from signin_links.store import EMAIL_FAILED, EMAIL_SENDING, EMAIL_UNKNOWN, EmailMarker
from signin_links.tickets import sign_ticket

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = EmailTemplates.load(ROOT / "functions" / "send_link_email" / "templates")
BASE = "https://links.example.com"
NOW = 1_750_000_000
KEY = generate_key(ED25519, now=NOW - 10)
KEYRING = Keyring(kind=ED25519, keys=(KEY,)).public()  # the email function holds public keys only
SETTINGS = Settings(table_name="t", accept_base_url=BASE, email_sender="links@example.com", email_sender_name="Ex")
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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
            self.markers[marker.token_id] = marker

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
        self.markers[token_id] = replace(held, status=EMAIL_UNKNOWN, request_id=request_id, reason="outcome_unknown")
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


# --- Properties ---------------------------------------------------------------------------------------

TAGS = re.compile(r"[<>\"']")


def check_request(request: dict[str, Any], event: dict[str, Any]) -> None:
    (address,) = request["Destination"]["ToAddresses"]
    assert address.isascii()
    assert address.count("@") == 1
    assert len(address) <= 254
    assert " " not in address
    simple = request["Content"]["Simple"]
    subject, text, body = simple["Subject"]["Data"], simple["Body"]["Text"]["Data"], simple["Body"]["Html"]["Data"]
    for part in (subject, text, body, request["FromEmailAddress"]):
        part.encode("utf-8")  # strictly: no lone surrogate reaches SES
    assert "\n" not in subject
    assert "\r" not in subject
    url = event["detail"]["url"]
    assert text.count(url) == 1
    assert body.count(url) == 2
    # Escaped values add no tag, attribute or quote: the HTML has the template's own, no more.
    bare = TEMPLATES.render(MintedLink("sit_0", "u", url, "t", 0, None, {})).html
    assert len(TAGS.findall(body)) == len(TAGS.findall(bare))


@PROPERTY
@given(event=minted_events())
@example(event=event_of(valid_detail("sit_0000000000000000000001", {"email": "a@example.com", "first_name": "<b>"})))
@example(event=event_of(valid_detail("sit_0000000000000000000002", {"email": "a@example.com", "first_name": 10**4000})))
def test_any_minted_event_is_sent_once_failed_once_or_ignored(event: dict[str, Any]) -> None:
    world = World()
    mailer = world.mailer()
    first = mailer.deliver(event, "req-1")
    assert first.outcome in {"sent", "failed", "ignored"}
    if first.outcome == "ignored":
        assert world.store.writes == 0
        assert not world.ses.requests
        assert not world.publisher.published
        return
    assert first.sign_in_token_id == event["detail"]["sign_in_token_id"]
    if first.outcome == "sent":
        (request,) = world.ses.requests
        check_request(request, event)
        assert not world.publisher.published
    else:
        assert not world.ses.requests
        ((detail_type, detail),) = world.publisher.published
        assert detail_type == "SignInLinkEmailFailed"
        assert detail["reason"] == first.reason
        assert set(detail) == {"sign_in_token_id", "user_id", "batch_id", "reason", "error_code"}
    again = mailer.deliver(event, "req-2")
    assert again.outcome == "duplicate"
    assert len(world.ses.requests) <= 1
    assert len(world.publisher.published) <= 1


@PROPERTY
@given(value=addresses)
def test_recipient_is_one_ascii_address_or_a_permanent_failure(value: Any) -> None:
    try:
        address = recipient({"email": value})
    except PermanentFailure as failure:
        assert failure.reason in {"no_address", "invalid_address"}
        return
    local, domain = address.split("@")
    assert address.isascii()
    assert address == address.strip()
    assert len(address) <= 254
    assert local
    assert "." in domain
    assert not re.search(r"[\s<>,;:\"\\]", address)


@PROPERTY
@given(meta=st.dictionaries(st.sampled_from(["first_name", "email", "x"]), json_values, max_size=3))
def test_any_metadata_renders_escaped(meta: dict[str, Any]) -> None:
    link = MintedLink("sit_0", "u<\"'>", f"{BASE}/accept-token?token=a.b.c", "a.b.c", (NOW + 60) * 1000, "b<", meta)
    rendered = TEMPLATES.render(link)
    bare = TEMPLATES.render(replace(link, user_id="u", batch_id=None, metadata={})).html
    assert len(TAGS.findall(rendered.html)) == len(TAGS.findall(bare))
    for part in (rendered.subject, rendered.text, rendered.html):
        part.encode("utf-8")
    assert "\n" not in rendered.subject


def templates_showing_metadata() -> list[EmailTemplates]:
    """The default templates, and a team's that show metadata fields in every part."""
    loaded = [TEMPLATES]
    for body in ("$url ${metadata.first_name|}", "$url ${metadata.note|none}"):
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "subject.txt").write_text("${metadata.first_name|Hi} ${metadata.note|}")
            (Path(folder) / "body.txt").write_text(body)
            (Path(folder) / "body.html").write_text(f"<p>{body}</p>")
            loaded.append(EmailTemplates.load(Path(folder)))
    return loaded


SHOWING_METADATA = templates_showing_metadata()
SPOOF_PAYLOADS = st.sampled_from(
    ["https://evil.example", "evil.example", "www.evil.test", "eve@evil.example", "<b>", "</p>", "x\u202ey",
     "evil\u3002example", "mailto:eve", "//evil.example"]
)  # fmt: skip
spoofing_text = st.tuples(st.text(max_size=20) | odd_text, SPOOF_PAYLOADS, st.text(max_size=20) | odd_text).map("".join)


@PROPERTY
@given(
    meta=st.fixed_dictionaries(
        {"first_name": spoofing_text | st.text(max_size=80) | json_values, "note": spoofing_text | json_values},
        optional={"locale": st.sampled_from(["de", "ar", "ja", "pt_BR", "xx"]) | json_values},
    )
)
@example(meta={"first_name": "Your account is locked, visit https://evil.example", "note": "x"})
def test_metadata_never_shows_a_link_or_markup_in_any_part(meta: dict[str, Any]) -> None:
    url = f"{BASE}/accept-token?token=a.b.c"
    link = MintedLink("sit_0", "u", url, "a.b.c", (NOW + 60) * 1000, None, meta)
    for templates in SHOWING_METADATA:
        rendered = templates.render(link)
        for part in (rendered.subject, rendered.text, rendered.html):
            shown = part.replace(url, "")
            assert not re.search(r"evil|://|www\.|@|\u202e|mailto", shown, re.IGNORECASE), shown
        assert not re.search(r"[<>]", rendered.subject + rendered.text.replace(url, ""))
        assert len(rendered.subject) <= 2 * 64 + 1


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


@PROPERTY
@given(script=st.lists(answers, max_size=8))
def test_any_ses_answer_sends_at_most_once_and_never_strands_a_claim(script: list[tuple[str, str]]) -> None:
    """An event invoked directly: one SendEmail per invocation; when SES did not take it, the
    invocation fails for Lambda's retry with the claim given back."""
    world = World()
    world.ses.script = [ses_exception(kind, code) for kind, code in script]
    mailer = world.mailer()
    event = event_of(valid_detail("sit_0000000000000000000009", {"email": "ada@example.com"}))
    outcomes = []
    for _attempt in range(3):  # the invocation, then Lambda's two retries (same request id)
        try:
            outcomes.append(mailer.deliver(event, "req-1").outcome)
        except SignInLinksError as exc:
            assert exc.code is ErrorCode.SERVICE_UNAVAILABLE
            assert "sit_0000000000000000000009" not in world.store.markers  # nothing sent: the claim is back
            outcomes.append("retry")
            continue
        break
    assert len(world.ses.accepted) <= 1
    assert len(world.ses.requests) == len(outcomes)  # one SendEmail per invocation, never repeated
    final = outcomes[-1]
    marker = world.store.markers.get("sit_0000000000000000000009")
    if final == "sent":
        assert marker is not None
        assert marker.status == "sent"
        assert len(world.ses.accepted) == 1
    elif final in ("failed", "unknown"):
        assert marker is not None
        assert marker.status in (EMAIL_FAILED, EMAIL_UNKNOWN)
        assert marker.announced
        assert [detail["reason"] for _, detail in world.publisher.published] == [marker.reason]
    else:
        assert final == "retry"
        assert marker is None
        assert not world.ses.accepted
    # And whatever happened, a later duplicate delivery sends nothing new.
    if final != "retry":
        assert mailer.deliver(event, "req-2").outcome == "duplicate"
        assert len(world.ses.accepted) <= 1


def test_a_token_signed_long_ago_is_a_permanent_failure_not_an_ignored_event() -> None:
    world = World()
    detail = valid_detail("sit_0000000000000000000003", {"email": "ada@example.com"})
    detail["url"] = f"{BASE}/accept-token?token={token_for('sit_0000000000000000000003', issued_at=NOW - 7200)}"
    assert world.mailer().deliver(event_of(detail), "req-1").reason == "link_expired"
    assert time.time() > 0
    assert not world.ses.requests


def test_without_accept_base_url_the_published_one_decides_which_links_are_ours() -> None:
    world = World()
    settings = replace(SETTINGS, accept_base_url="")
    mailer = world.mailer(settings, published_base_url=lambda: BASE + "/")
    ours = event_of(valid_detail("sit_0000000000000000000004", {"email": "ada@example.com"}))
    assert mailer.deliver(ours, "req-1").outcome == "sent"
    elsewhere = valid_detail("sit_0000000000000000000005", {"email": "ada@example.com"})
    elsewhere["url"] = elsewhere["url"].replace(BASE, "https://other.example.com")
    assert mailer.deliver(event_of(elsewhere), "req-1").outcome == "ignored"
    with pytest.raises(ConfigError, match="ACCEPT_BASE_URL_PARAMETER"):
        world.mailer(settings)
