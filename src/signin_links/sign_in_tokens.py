"""Use cases of the /v1 API: mint a sign-in token, revoke one. Composes keyring, tickets and store.

No API Gateway or EventBridge shapes here: handlers turn events into :class:`MintRequest` and
responses out of :class:`SignInToken`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from signin_links import ids
from signin_links.config import ConfigError, Settings
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.keyring import Keyring
from signin_links.mint_request import MintRequest, check_mint_request
from signin_links.models import SignInToken, SignInTokenRecord, TokenStatus
from signin_links.observability import logger
from signin_links.store import TokenStore
from signin_links.tickets import sign_ticket

Clock = Callable[[], float]


def accept_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/accept-token?token={token}"


class SignInTokens:
    """Minting and revoking sign-in tokens."""

    def __init__(
        self,
        settings: Settings,
        store: TokenStore,
        ticket_keyring: Callable[[], Keyring],
        clock: Clock = time.time,
        published_base_url: Callable[[], str] = lambda: "",
    ) -> None:
        self.settings = settings
        self.store = store
        self.ticket_keyring = ticket_keyring
        self.clock = clock
        # The stack's own URL, published by the template after the API exists (an SSM parameter):
        # what links point at when no AcceptBaseUrl is configured, for batches from the first deploy.
        self.published_base_url = published_base_url

    def new_record(
        self, request: MintRequest, *, token_id: str, now: float, batch_id: str | None = None
    ) -> SignInTokenRecord:
        """A pending record for a request already settled by :func:`check_mint_request`.

        Raises nothing: pure, no I/O.
        """
        assert request.expires_in_seconds is not None
        now_ms = int(now * 1000)
        return SignInTokenRecord(
            id=token_id,
            user_id=request.user_id,
            status=TokenStatus.PENDING,
            created_at=now_ms,
            updated_at=now_ms,
            expires_at=int(now) + request.expires_in_seconds,
            expires_in_seconds=request.expires_in_seconds,
            redirect_url=request.redirect_url,
            org_id=request.org_id,
            batch_id=batch_id,
        )

    def issue(self, record: SignInTokenRecord, keyring: Keyring, base_url: str) -> SignInToken:
        """Sign the token for a record (deterministic for the same record and key).

        Raises:
            KeyringFormatError: the key that signs now holds no private key (a keyring that neither
                the stack nor its rotation wrote); a ``ValueError``, the handler's 500.
        """
        issued_at = record.expires_at - record.expires_in_seconds
        token = sign_ticket(
            keyring.current(self.clock()),
            sid=record.id,
            issued_at=issued_at,
            expires_in_seconds=record.expires_in_seconds,
            redirect_url=record.redirect_url,
            user_id=record.user_id,
            org_id=record.org_id,
        )
        return SignInToken(record=record, token=token, url=accept_url(base_url, token))

    def base_url(self, fallback: str) -> str:
        """Where an HTTP-minted link points: the configured URL; behind the stack's CloudFront
        distribution, the published URL (the request reaches the API on the execute-api host); else,
        and when the published URL is unreadable, the request's own host (which is what the stack
        publishes then: SSM is not read on this path).

        Raises nothing: an unreadable published URL is logged where it failed, and the request's
        host still makes a working link.
        """
        if self.settings.accept_base_url:
            return self.settings.accept_base_url
        if not self.settings.links_behind_cloudfront:
            return fallback
        try:
            published = self.published_base_url()
        except SignInLinksError:
            published = ""  # logged where it failed; the request's host still makes a working link
        return published.rstrip("/") or fallback

    def batch_base_url(self) -> str:
        """Where a batch-minted link points (no request to take a host from).

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when the published URL cannot be read
                (the batch is retried).
            ConfigError: neither ``ACCEPT_BASE_URL`` nor a published URL (a deployment error).
        """
        url = self.settings.accept_base_url or self.published_base_url().rstrip("/")
        if not url:
            raise ConfigError(
                "no accept base URL for batches: set ACCEPT_BASE_URL (template parameter AcceptBaseUrl) or "
                "ACCEPT_BASE_URL_PARAMETER (the stack's AcceptBaseUrlParameter)"
            )
        return url

    def create(self, request: MintRequest, *, fallback_base_url: str) -> SignInToken:
        """Mint a pending sign-in token and its link (``POST /v1/sign_in_tokens``).

        Raises:
            SignInLinksError: ``form_param_value_invalid`` (422) / ``form_param_missing`` (422) for a request
                outside the contract (``mint_request.check_mint_request``); ``service_unavailable`` (503)
                (503) when the keyring, the published URL or DynamoDB cannot be read or written.
        """
        request = check_mint_request(request, self.settings)
        keyring = self.ticket_keyring()  # before the write: no key, no stored token
        now = self.clock()
        record = self.new_record(request, token_id=ids.new_id(ids.SIGN_IN_TOKEN), now=now)
        minted = self.issue(record, keyring, self.base_url(fallback_base_url))
        self.store.create(record, self.settings.ttl_for(record.expires_at))
        return minted

    def renew(self, renewal_of: str, token_id: str, request: MintRequest) -> SignInToken:
        """A fresh link in place of the dead link ``renewal_of`` (renewal.py): the same user, org and
        redirect (dropped if no longer allowed), the default lifetime, and an id derived from the dead
        one, so that a redelivered request re-signs the link it minted rather than mint another.

        Raises:
            SignInLinksError: ``service_unavailable`` (503) when the keyring, the published URL or DynamoDB
                cannot be read or written (the renewal event is retried).
            ConfigError: no accept base URL to point the link at (as :meth:`batch_base_url`).
        """
        try:
            request = check_mint_request(request, self.settings)
        except SignInLinksError:  # the redirect is no longer allowed: the link still signs the user in
            logger.warning("renewal: the dead link's redirect is no longer allowed", extra={"renewal_of": renewal_of})
            request = check_mint_request(replace(request, redirect_url=None), self.settings)
        keyring = self.ticket_keyring()
        base_url = self.batch_base_url()
        existing = self.store.get(token_id)
        if existing is not None:
            return self.issue(existing, keyring, base_url)
        record = self.new_record(request, token_id=token_id, now=self.clock())
        minted = self.issue(record, keyring, base_url)
        self.store.create(record, self.settings.ttl_for(record.expires_at))
        return minted

    def revoke(self, token_id: str) -> SignInTokenRecord:
        """Revoke a pending token (``POST /v1/sign_in_tokens/{id}/revoke``); the record as revoked.

        Raises:
            SignInLinksError: ``resource_not_found`` (404) for an id that is not one or not stored;
                ``sign_in_token_cannot_be_revoked_code`` (400) once accepted or revoked;
                ``service_unavailable`` (503) when DynamoDB cannot be reached.
        """
        if not ids.is_id(token_id, ids.SIGN_IN_TOKEN):
            raise SignInLinksError(ErrorCode.RESOURCE_NOT_FOUND, "No sign in token was found with that id.")
        return self.store.revoke(token_id, int(self.clock() * 1000))
