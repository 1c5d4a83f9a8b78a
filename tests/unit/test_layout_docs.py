"""README's layout and the architecture page's module map name every module of the domain package
and every function, so a module added (or renamed) without its line there fails here."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "signin_links"
MODULES = sorted(path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py")
FUNCTIONS = sorted(path.name for path in (ROOT / "functions").iterdir() if (path / "app.py").is_file())


def layout(document: str) -> str:
    """The fenced code block of ``document`` that maps the repository (it starts at ``template.yaml``)."""
    text = (ROOT / document).read_text(encoding="utf-8")
    inside = re.split(r"^```[a-z]*$", text, flags=re.MULTILINE)[1::2]  # the fences' contents
    [block] = [block for block in inside if block.lstrip().startswith("template.yaml")]
    return block


@pytest.mark.parametrize("document", ["README.md", "docs/architecture.md"])
def test_the_layout_names_every_module_and_function(document: str) -> None:
    block = layout(document)
    named = set(re.findall(r"\b([A-Za-z_0-9]+\.py)\b", block))
    missing = [str(path.relative_to(PACKAGE)) for path in MODULES if path.name not in named]
    assert not missing, f"{document} does not name {missing}"
    unnamed = [name for name in FUNCTIONS if f"{name}/" not in block]
    assert not unnamed, f"{document} does not name the functions {unnamed}"


def test_the_readme_says_where_a_batch_is_planned() -> None:
    assert "plan.py (where a batch is" in layout("README.md")
    assert "src/signin_links/batch/plan.py" in (ROOT / "README.md").read_text(encoding="utf-8")
