"""Environments that mirror what a Lambda function really has on its ``sys.path``.

The dev virtualenv holds everything (``cryptography`` included), so measuring a handler there
would not say what the deployed package costs. Instead each function gets a directory made from
its own ``functions/<dir>/requirements.txt`` (the complete, pinned list that ``sam build`` ships,
installed ``--no-deps`` for this machine's platform), a copy of the function's files and
``signin_links`` (the task root), and the Lambda runtime's share (boto3 and its dependencies, at the
versions of the dev virtualenv). A child process then runs ``python -S -s`` (no site-packages at
all) with ``PYTHONPATH`` = task root, package deps, runtime deps: the modules Lambda would find, and
no others.

Both are cached under ``bench/.cache`` keyed by the hash of what they were made from.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import CACHE, ROOT

RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six")


def _install(target: Path, requirements: list[str], *, compile_bytecode: bool = True) -> Path:
    """``pip install --no-deps --target`` once per distinct requirement list (cached)."""
    flavour = "" if compile_bytecode else "nopyc"
    digest = hashlib.sha256("\n".join([flavour, *sorted(requirements)]).encode()).hexdigest()[:12]
    done = target.with_name(f"{target.name}-{digest}")
    if (done / ".complete").exists():
        return done
    done.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--upgrade", "--target", str(done), *([] if compile_bytecode else ["--no-compile"]), *requirements],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        raise RuntimeError(f"pip install into {done} failed:\n{completed.stderr[-3000:]}")
    (done / ".complete").write_text("\n".join(requirements))
    return done


def task_root(directory: str, flavour: str) -> Path:
    """A fresh copy of what ``make build-<Function>`` puts beside the dependencies: the function's
    files (``app.py``, ``templates/``) and ``signin_links``, without any ``__pycache__``."""
    root = CACHE / f"taskroot-{directory}-{flavour}"
    if root.exists():
        shutil.rmtree(root)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt")
    shutil.copytree(ROOT / "functions" / directory, root, ignore=ignore)
    shutil.copytree(ROOT / "src" / "signin_links", root / "signin_links", ignore=ignore)
    return root


def requirement_lines(path: Path) -> list[str]:
    stripped = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in stripped if line]


def runtime_dir() -> Path:
    """boto3 and its dependencies, as the Lambda python runtime provides them."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in RUNTIME_DISTRIBUTIONS]
    return _install(CACHE / "lambda-runtime", pins)


@dataclass(frozen=True)
class FunctionEnv:
    """What a child process needs to import one function as Lambda would."""

    task_root: Path
    package_dir: Path
    runtime_dir: Path
    bytecode: bool = True

    @property
    def pythonpath(self) -> str:
        return os.pathsep.join(str(p) for p in dict.fromkeys((self.task_root, self.package_dir, self.runtime_dir)))

    def has(self, distribution: str) -> bool:
        return any(self.package_dir.glob(f"{distribution}-*.dist-info"))


def function_env(directory: str, *, bytecode: bool = True) -> FunctionEnv:
    """``bytecode=False`` mirrors the package ``sam build`` makes today: no ``.pyc`` anywhere in it
    (the runtime's boto3 keeps its own), and none can be written (``/var/task`` is read-only)."""
    requirements = requirement_lines(ROOT / "functions" / directory / "requirements.txt")
    package = _install(CACHE / f"package-{directory}", requirements, compile_bytecode=bytecode)
    flavour = "pyc" if bytecode else "nopyc"
    return FunctionEnv(task_root(directory, flavour), package, runtime_dir(), bytecode=bytecode)


def runtime_only_env() -> FunctionEnv:
    """Only the runtime's boto3: the baseline's environment."""
    runtime = runtime_dir()
    return FunctionEnv(task_root=runtime, package_dir=runtime, runtime_dir=runtime)
