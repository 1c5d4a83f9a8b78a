"""No module of the suite imports from a test module.

A test module imported by another runs its module-level code twice under two names, lends its
fixtures and helpers through an import that reads like a test dependency, and breaks when the test
it holds is moved or deleted. Shared helpers live in helper modules named for what they hold
(``tests/handlers.py``, ``tests/session_calls.py``, ``tests/e2e/polling.py``...) and shared fixtures
in a ``conftest.py`` (or a helper module whose fixtures a test module binds by name).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def _is_test_module(dotted: str) -> bool:
    return dotted.rsplit(".", 1)[-1].startswith("test_")


def imported_test_modules(source: str, package: str) -> list[tuple[int, str]]:
    """The test modules (``test_*``) a module of ``package`` (e.g. ``tests.e2e``) imports, with the
    line: ``import tests.x.test_y``, ``from tests.x.test_y import z``, ``from tests.x import test_y``
    and the relative forms of each."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if _is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parent + ([node.module] if node.module else []))
            if base and _is_test_module(base):
                found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if _is_test_module(alias.name)]
    return found


def suite_modules() -> list[Path]:
    return sorted(path for path in TESTS.rglob("*.py") if "node_modules" not in path.parts)


def test_no_module_of_the_suite_imports_a_test_module() -> None:
    modules = suite_modules()
    assert Path(__file__).resolve() in modules
    assert len([path for path in modules if path.name.startswith("test_")]) > 50  # the scan sees the suite
    offenders = []
    for path in modules:
        relative = path.relative_to(TESTS.parent)
        package = ".".join(relative.parent.parts)
        for line, name in imported_test_modules(path.read_text(encoding="utf-8"), package):
            offenders.append(f"{relative}:{line} imports {name}")
    assert offenders == [], "move what they share into a helper module or a conftest.py:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("from tests.e2e.test_rules import put_batch", ["tests.e2e.test_rules"], id="from-module"),
        pytest.param(
            "import tests.integration.test_session_routes as routes",
            ["tests.integration.test_session_routes"],
            id="import-module",
        ),
        pytest.param(
            "from tests.e2e import test_browser_sessions as sessions",
            ["tests.e2e.test_browser_sessions"],
            id="from-package-import-module",
        ),
        pytest.param(
            "from .test_csrf_tokens import form_token", ["tests.integration.test_csrf_tokens"], id="relative-module"
        ),
        pytest.param("from . import test_csrf_tokens", ["tests.integration.test_csrf_tokens"], id="relative-package"),
        pytest.param("from ..e2e.test_rules import wait_for", ["tests.e2e.test_rules"], id="relative-parent"),
        pytest.param(
            "def later():\n    from tests.integration.test_session_store import a_session",
            ["tests.integration.test_session_store"],
            id="inside-a-function",
        ),
        pytest.param("from tests.e2e.polling import wait_for\nfrom tests.handlers import accept", [], id="helpers"),
        pytest.param("from tests.conftest import Stack\nfrom . import conftest", [], id="conftest"),
        pytest.param("import testing\nfrom hypothesis import strategies", [], id="libraries"),
    ],
)
def test_the_scan_finds_every_spelling_of_a_test_module_import(source: str, expected: list[str]) -> None:
    assert [name for _, name in imported_test_modules(source, "tests.integration")] == expected
