"""Each use case says what it raises: every public method of the use-case classes (and
``auth.authenticate``) has a ``Raises:`` section, or says "Raises nothing", and every wire code a
``SignInLinksError`` entry names is one of ``errors.ErrorCode``'s (a misspelt or retired code
fails here, and so does a wrong status). The sources are read with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
import re

import pytest

from signin_links.errors import ErrorCode
from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "signin_links"
USE_CASES = {
    "sign_in_tokens.py": ["SignInTokens"],
    "redeem.py": ["Redemptions"],
    "sessions.py": ["Sessions"],
    "frontend.py": ["FrontendApi"],
    "renewal.py": ["Renewals"],
    "link_email/sending.py": ["LinkEmails"],
    "email_queue.py": ["EmailQueue"],
    "batch/minter.py": ["TokenBatches"],
    "rotation/secrets_manager.py": ["KeyringRotations"],
}
FUNCTIONS = {"auth.py": ["authenticate"]}
STATUS: dict[str, set[int]] = {}  # wire code -> its HTTP statuses (resource_not_found: routes and resources)
for _code in ErrorCode:
    STATUS.setdefault(_code.wire_code, set()).add(_code.status)


def public_methods() -> list[tuple[str, ast.FunctionDef]]:
    found = []
    for module, classes in USE_CASES.items():
        tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name in classes:
                found.extend(
                    (f"{module}:{node.name}.{item.name}", item)
                    for item in node.body
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("_")
                )
    for module, names in FUNCTIONS.items():
        tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
        found.extend(
            (f"{module}:{node.name}", node)
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name in names
        )
    return found


METHODS = public_methods()


def test_every_use_case_class_is_found() -> None:
    named = {name.split(":")[1].split(".")[0] for name, _ in METHODS}
    assert named == {cls for classes in USE_CASES.values() for cls in classes} | {"authenticate"}


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[name for name, _ in METHODS])
def test_each_public_method_says_what_it_raises(name: str, method: ast.FunctionDef) -> None:
    doc = ast.get_docstring(method) or ""
    assert "Raises:" in doc or "Raises nothing" in doc, f"{name}: no Raises: section and no 'Raises nothing'"


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[name for name, _ in METHODS])
def test_the_codes_a_raises_section_names_are_wire_codes_with_their_status(name: str, method: ast.FunctionDef) -> None:
    """A wire code is written with its status, ``code`` (NNN): both must be ErrorCode's."""
    doc = ast.get_docstring(method) or ""
    if "Raises:" not in doc:
        return
    section = doc.split("Raises:", 1)[1]
    with_status = re.findall(r"``([a-z][a-z_]*)``\s+\((\d{3})", section)
    for code, status in with_status:
        assert code in STATUS, f"{name}: ``{code}`` is not an ErrorCode wire code"
        assert int(status) in STATUS[code], f"{name}: ``{code}`` is {sorted(STATUS[code])}, not {status}"
    bare = set(re.findall(r"``([a-z][a-z_]*)``(?!\s+\(\d{3})", section)) & STATUS.keys()
    assert not bare, f"{name}: write the status after {sorted(bare)}"
