"""Comments and docstrings say what the code does and why, now; which issue asked for it, and what the
code did before, belong in ``git log``. A comment naming this project's issues ("issue 9", "issue 18
item 3", "pre-issue-18") ages into noise the day the issue closes; this scan keeps them out of the
code, the tests and the tooling. (A link to another project's tracker is a URL: ``.../issues/123``.)
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("src", "functions", "local", "bench", "ops", "tests")
ISSUE = re.compile(r"\bissues?[ -]\d+|\bissues? \d+ (?:and|or) \d+", re.IGNORECASE)


def issue_mentions(source: str) -> list[tuple[int, str]]:
    """The lines of ``source``'s comments and string literals that name an issue by number."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING):
            for offset, line in enumerate(token.string.splitlines()):
                if ISSUE.search(line):
                    found.append((token.start[0] + offset, line.strip()))
    return found


def python_files() -> list[Path]:
    return sorted(
        path
        for folder in SCANNED
        for path in (ROOT / folder).rglob("*.py")
        if not {"node_modules", ".aws-sam", "build"} & set(path.parts)
    )


def test_no_comment_or_docstring_names_an_issue() -> None:
    files = python_files()
    assert Path(__file__).resolve() in files
    assert len(files) > 200  # the scan sees the code
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text[:100]}"
        for path in files
        if path != Path(__file__).resolve()  # this file's examples name issues on purpose
        for line, text in issue_mentions(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "say what is checked and why; the issue belongs in git log:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "named"),
    [
        pytest.param("x = 1  # issue 9: a 500\n", True, id="comment"),
        pytest.param('"""Sessions (issue 10 item 7)."""\n', True, id="docstring"),
        pytest.param("# Issue 18, item 5: the list stopped\n", True, id="capitalised"),
        pytest.param("# the pre-issue-18 shape\n", True, id="hyphenated"),
        pytest.param('"""CloudFormation (issues 9 and 11)."""\n', True, id="plural"),
        pytest.param("# see https://github.com/getmoto/moto/issues/7000\n", False, id="another-trackers-url"),
        pytest.param("# no issue here: 3 retries\n", False, id="no-number"),
        pytest.param("issue_count = 9\n", False, id="code"),
    ],
)
def test_the_scan_reads_comments_and_strings_for_an_issue_number(source: str, named: bool) -> None:
    assert bool(issue_mentions(source)) is named
