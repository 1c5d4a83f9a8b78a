"""``npm ci`` of a test's pinned JavaScript packages, once, whichever test (or xdist worker) asks first.

Several test modules need the same ``node_modules`` (clerk-js for the Frontend API's browser tests,
axe-core for the pages); ``make test`` runs modules in parallel processes, so the install holds a
file lock beside ``package-lock.json`` and the next asker finds it done instead of installing over it.
A machine without npm skips the test and says so.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest


def npm_ci(directory: Path, installed: Path, *, why: str, timeout: float = 600) -> bool:
    """Install ``directory``'s packages from its lockfile unless ``installed`` (a file the install
    writes) is already there; skip the test with ``why`` where npm is absent. Whether this call
    installed them."""
    if installed.exists():
        return False
    if shutil.which("npm") is None:
        pytest.skip(f"npm is not installed (needed for {why})")
    with (directory / ".npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if installed.exists():
            return False
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
        )
        return True
