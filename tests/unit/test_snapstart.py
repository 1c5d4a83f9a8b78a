"""snapstart's hook registry: what ``restored()`` runs, and ``HOOKS.isolated`` (the seam the
integration tests restore one freshly loaded handler through)."""

from __future__ import annotations

import pytest

from signin_links import snapstart


def test_restored_runs_the_hooks_in_registration_order() -> None:
    ran: list[str] = []
    with snapstart.HOOKS.isolated():
        snapstart.after_restore(lambda: ran.append("first"))
        snapstart.after_restore(lambda: ran.append("second"))
        snapstart.restored()
    assert ran == ["first", "second"]


def test_isolated_runs_only_the_kept_hooks_and_those_registered_inside_then_gives_back_the_rest() -> None:
    ran: list[str] = []
    with snapstart.HOOKS.isolated():
        snapstart.after_restore(lambda: ran.append("outer"))
        with snapstart.HOOKS.isolated(snapstart.reseed_random):
            snapstart.after_restore(lambda: ran.append("inner"))
            snapstart.restored()
            assert ran == ["inner"]
        ran.clear()
        snapstart.restored()  # the inner block's hook is gone, the outer one is back
        assert ran == ["outer"]


def test_isolated_gives_back_the_registry_when_the_block_raises() -> None:
    ran: list[str] = []
    with snapstart.HOOKS.isolated():
        snapstart.after_restore(lambda: ran.append("outer"))
        with pytest.raises(RuntimeError), snapstart.HOOKS.isolated():
            snapstart.after_restore(lambda: ran.append("inner"))
            raise RuntimeError("a failing test")
        snapstart.restored()
    assert ran == ["outer"]
