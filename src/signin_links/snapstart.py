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
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

Hook = Callable[[], None]

_hooks: list[Hook] = []


def snapshot_init() -> bool:
    """Whether this init is the one Lambda snapshots."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


def after_restore(hook: Hook) -> Hook:
    """Run ``hook`` after each restore from a snapshot (in registration order)."""
    _hooks.append(hook)
    if snapshot_init():
        from snapshot_restore_py import register_after_restore  # Lambda's runtime; see the module docstring

        register_after_restore(hook)
    return hook


def restored() -> None:
    """Run every registered hook, as the runtime does after a restore."""
    for hook in list(_hooks):
        hook()


@after_restore
def reseed_random() -> None:
    random.seed()  # from os.urandom: each restored environment draws its own jitter
