"""Lambda SnapStart (the ``SnapStart`` template parameter): what runs when a snapshot is restored.

With SnapStart, Lambda runs a published version's init once, snapshots the execution environment
and starts new environments from that snapshot, possibly days later and many times over. Whatever
the init cached is restored as it was, in every copy. The handlers therefore register
:func:`after_restore` hooks that drop what must not be shared or reused, then warm up again:

* the module-level ``random`` state, reseeded from ``os.urandom`` (``secrets`` and ``os.urandom``,
  which make every id and key, read the kernel's entropy and need nothing);
* secrets, parsed keyrings and API keys: re-read, so a rotation since the snapshot is seen at once
  and the snapshot's copy is never what signs;
* the boto3 session, its clients and the composition roots holding them: rebuilt, so credentials and
  connections are the restored environment's own.

Lambda's runtime provides ``snapshot_restore_py``; it is imported only when Lambda says this init is
for a snapshot (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``), so tests, the local stack and on-demand
functions never need it. :func:`restored` runs the registered hooks (what the runtime does; tests call it).
The hooks are kept in :data:`HOOKS`; a process that loads several handlers and restores one of them
(the tests) registers that one's inside ``HOOKS.isolated(...)``.

The serving handlers warm up the same way (:func:`warm_up`): build the composition root, read the
secrets and parse the keys in the init phase, then again after each restore once the roots, the
secrets and the clients are dropped; a secret that cannot be read yet is logged, not raised
(:func:`read_later`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from signin_links import aws
from signin_links.errors import SignInLinksError
from signin_links.keyring import forget_secrets
from signin_links.observability import logger

Hook = Callable[[], None]


class Cached(Protocol):
    """A composition root (``functools.cache``): what a restore drops."""

    def cache_clear(self) -> None: ...


class RestoreHooks:
    """The hooks a restore runs, in registration order (the runtime keeps its own list as well, for
    a snapshot init: :func:`after_restore`)."""

    def __init__(self) -> None:
        self._hooks: list[Hook] = []

    def add(self, hook: Hook) -> None:
        self._hooks.append(hook)

    def run(self) -> None:
        for hook in list(self._hooks):
            hook()

    @contextmanager
    def isolated(self, *kept: Hook) -> Iterator[None]:
        """Within the block the registry holds ``kept`` and what is registered inside; afterwards,
        what it held before. For a process that loads several handlers and restores only some: a
        test that restores a freshly loaded handler, without running every other handler's hooks."""
        held = self._hooks
        self._hooks = list(kept)
        try:
            yield
        finally:
            self._hooks = held


HOOKS = RestoreHooks()


def snapshot_init() -> bool:
    """Whether this init is the one Lambda snapshots."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


def after_restore(hook: Hook) -> Hook:
    """Run ``hook`` after each restore from a snapshot (in registration order)."""
    HOOKS.add(hook)
    if snapshot_init():
        from snapshot_restore_py import register_after_restore  # Lambda's runtime; see the module docstring

        register_after_restore(hook)
    return hook


def restored() -> None:
    """Run every registered hook, as the runtime does after a restore."""
    HOOKS.run()


@after_restore
def reseed_random() -> None:
    random.seed()  # from os.urandom: each restored environment draws its own jitter


@contextmanager
def read_later() -> Iterator[None]:
    """Around the init's reads of secrets and keys: a failure (Secrets Manager unreachable, a key
    that does not parse) is logged, not raised. The first request reads again (and answers 503 if it
    still cannot), where an init that raised would fail that request and run the whole init again."""
    try:
        yield
    except (SignInLinksError, ValueError) as error:
        logger.warning("init: secrets not read; the first request reads them", extra={"error": type(error).__name__})


def warm_up(initialise: Hook, *roots: Cached) -> None:
    """Run a handler's ``initialise`` now (Lambda's init phase, before the snapshot with SnapStart),
    so that the first request does not pay for it; and after each restore, once ``roots`` (its
    composition roots), the secrets (``keyring.forget_secrets``) and the boto3 clients are dropped, so
    that nothing the snapshot holds signs, verifies or calls AWS in a restored environment."""

    @after_restore
    def restored() -> None:
        for root in roots:
            root.cache_clear()
        forget_secrets()
        aws.reset_clients()
        initialise()

    initialise()
