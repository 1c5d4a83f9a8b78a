"""`make lint` runs import-linter (`lint-imports`) with the contracts in pyproject.toml: each test
below copies the packages to a temporary folder, makes one import run the wrong way there, and
expects lint-imports to fail naming the broken contract. The unchanged copy passes, so each failure
comes from the one import added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("src/signin_links", "functions", "local", "bench", "ops")  # the contracts' root packages


def lint_imports() -> Path:
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("lint-imports is not installed next to this Python: it is in the dev extras (make install)")
    return Path(found)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The packages and pyproject.toml, copied: ``src/signin_links`` comes first on PYTHONPATH, before
    the editable install of the real one."""
    for relative in PACKAGES:
        shutil.copytree(ROOT / relative, tmp_path / relative, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def run(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(lint_imports()), "--no-cache"],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tree / 'src'}:{tree}", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def add_import(tree: Path, module_file: str, statement: str) -> None:
    path = tree / module_file
    path.write_text(path.read_text(encoding="utf-8") + f"\n{statement}  # the wrong way\n", encoding="utf-8")


def broken(result: subprocess.CompletedProcess[str]) -> str:
    """The report's part that lists the broken contracts (after its summary)."""
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout.split("Broken contracts", 1)[1]


def test_the_repository_keeps_every_contract(tree: Path) -> None:
    result = run(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module_file", "statement", "contract"),
    [
        ("src/signin_links/config.py", "import local.template", "The domain package (src/signin_links) imports no"),
        ("src/signin_links/http.py", "import bench", "The domain package (src/signin_links) imports no"),
        ("functions/mint_link/app.py", "from local import emulator", "The Lambda handlers (functions/*) import"),
        ("functions/accept_token/app.py", "import functions.mint_link.app", "Each Lambda handler stands alone"),
        ("local/outbox.py", "import bench.capacity", "The local stack imports no benchmark"),
        ("ops/audit_rebuild.py", "import local.template", "The runbooks (ops/) run against AWS"),
        ("local/template.py", "import local.stack", "The local stack's layers"),
        ("local/follow.py", "from local import invoke", "The local stack's layers"),
        ("bench/_envs.py", "import bench.cold_start", "No import cycles among the modules"),
        ("src/signin_links/wire.py", "import signin_links.pages", "The domain package's layers"),
        ("src/signin_links/redeem.py", "import signin_links.wire", "The domain package's layers"),
        (
            "src/signin_links/sessions.py",
            "from signin_links.wire import parse_session_query",
            "The domain package's layers",
        ),
        ("src/signin_links/frontend.py", "import signin_links.frontend_wire", "The domain package's layers"),
        ("src/signin_links/request_values.py", "import signin_links.mint_request", "The domain package's layers"),
        ("src/signin_links/redeem.py", "import signin_links.rotation.policy", "The domain package's layers"),
        ("src/signin_links/audit.py", "import signin_links.ids", "The domain package's layers"),  # stdlib only
        ("src/signin_links/store/tokens.py", "import signin_links.keyring", "The domain package's layers"),
        ("src/signin_links/models.py", "from signin_links import store", "The domain package's layers"),
        ("src/signin_links/sign_in_tokens.py", "import signin_links.redeem", "The domain package's layers"),
        ("src/signin_links/link_email/sending.py", "import signin_links.batch", "The domain package's layers"),
        (
            "src/signin_links/batch/summary.py",
            "import signin_links.batch.minter",
            "No import cycles among the modules of the domain package",
        ),
    ],
)
def test_a_wrong_way_import_fails_the_lint(tree: Path, module_file: str, statement: str, contract: str) -> None:
    add_import(tree, module_file, statement)
    assert contract in broken(run(tree)).replace("\n", " ")


def test_a_new_local_module_must_be_placed_in_the_layers(tree: Path) -> None:
    (tree / "local" / "unplaced.py").write_text('"""A module nobody placed."""\n', encoding="utf-8")
    report = broken(run(tree))
    assert "The local stack's layers" in report.replace("\n", " ")
    assert "local.unplaced" in report


def test_a_new_domain_module_must_be_placed_in_the_layers(tree: Path) -> None:
    (tree / "src" / "signin_links" / "unplaced.py").write_text('"""A module nobody placed."""\n', encoding="utf-8")
    report = broken(run(tree))
    assert "The domain package's layers" in report.replace("\n", " ")
    assert "signin_links.unplaced" in report
