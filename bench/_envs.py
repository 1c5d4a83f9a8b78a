"""Environments that mirror what a Lambda function really has on its ``sys.path``.

The dev virtualenv holds everything (``cryptography`` included), so measuring a handler there
would not say what the deployed package costs. Instead a child process runs ``python -S -s`` (no
site-packages at all) with ``PYTHONPATH`` = the function's directory, then the Lambda runtime's
share (boto3 and its dependencies, at the versions of the dev virtualenv): the modules Lambda would
find, and no others.

:func:`lambda_package` is what ``make build-<Function>`` (the Makefile's ``lambda_package``)
puts in the artifacts directory, built with the interpreter that will run it: the function's own
``functions/<dir>/requirements.txt`` (the complete pinned list, ``--no-deps``, wheels only, for
this machine's platform), ``signin_links``, ``functions/<dir>/*.py`` and ``templates/`` in ONE
directory, no ``__pycache__``, then (``compiled=True``) ``compileall -q -j 0
--invalidation-mode unchecked-hash`` over all of it, exactly as the Makefile does. Its children
run with ``-B``: ``/var/task`` is read-only, so a module without valid bytecode is compiled at
every cold start, never cached. :func:`floor_package` packages a floor handler
(``bench/floors/``) the same way.

:func:`lambda_python` finds Lambda's own Python version (3.13) the way the Makefile does.
Installed dependencies are cached under ``bench/.cache`` keyed by interpreter and requirements.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import CACHE, ROOT

RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six")
LAMBDA_PYTHON_VERSION = (3, 13)  # template.yaml: Runtime: python3.13
# The Makefile's `lambda_package` compiles the artifacts with exactly this command (after `-m`).
COMPILEALL = ("compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash")


@dataclass(frozen=True)
class Interpreter:
    """One Python executable and what it says about itself."""

    executable: str
    version: str  # platform.python_version(), e.g. "3.13.0"
    cache_tag: str  # sys.implementation.cache_tag, e.g. "cpython-313"

    @property
    def version_info(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.version.split(".")[:2])

    @property
    def label(self) -> str:
        return f"Python {self.version}"


def current_python() -> Interpreter:
    return Interpreter(sys.executable, platform.python_version(), sys.implementation.cache_tag or "")


def probe(executable: str) -> Interpreter | None:
    """Ask ``executable`` what it is; None if it does not run (a pyenv shim with no version set)."""
    script = "import json, platform, sys; print(json.dumps([platform.python_version(), sys.implementation.cache_tag]))"
    try:
        completed = subprocess.run([executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
        version, cache_tag = json.loads(completed.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    if completed.returncode != 0:
        return None
    return Interpreter(executable, str(version), str(cache_tag))


def lambda_python() -> Interpreter | None:
    """Lambda's Python version on this machine, looked for as the Makefile's ``LAMBDA_PYTHON``:
    ``$LAMBDA_PYTHON``, else pyenv's ``~/.pyenv/versions/3.13*/bin/python3.13``, else
    ``python3.13`` on ``PATH``; each kept only if it really runs 3.13."""
    candidates = [
        os.environ.get("LAMBDA_PYTHON"),
        *sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / "3.13*" / "bin" / "python3.13"))),
        shutil.which("python3.13"),
    ]
    for candidate in dict.fromkeys(c for c in candidates if c):
        found = probe(candidate)
        if found is not None and found.version_info == LAMBDA_PYTHON_VERSION:
            return found
    return None


def _install(
    target: Path,
    requirements: list[str],
    *,
    compile_bytecode: bool = True,
    python: Interpreter | None = None,
    only_binary: bool = False,
) -> Path:
    """``pip install --no-deps --target`` with ``python`` (default: this one), once per distinct
    interpreter and requirement list (cached)."""
    python = python or current_python()
    flavour = ("" if compile_bytecode else "nopyc") + ("binary" if only_binary else "")
    key = [flavour, *sorted(requirements)]
    if python.executable != sys.executable:  # the key this cache had before other interpreters
        key = [python.executable, python.version, *key]
    digest = hashlib.sha256("\n".join(key).encode()).hexdigest()[:12]
    done = target.with_name(f"{target.name}-{digest}")
    if (done / ".complete").exists():
        return done
    if done.exists():
        shutil.rmtree(done)
    done.mkdir(parents=True)
    completed = subprocess.run(
        [python.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--upgrade", "--target", str(done), *([] if compile_bytecode else ["--no-compile"]),
         *(["--only-binary=:all:"] if only_binary else []), *requirements],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        raise RuntimeError(f"pip install into {done} failed:\n{completed.stderr[-3000:]}")
    (done / ".complete").write_text("\n".join(requirements))
    return done


def requirement_lines(path: Path) -> list[str]:
    stripped = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in stripped if line]


def runtime_dir(python: Interpreter | None = None) -> Path:
    """boto3 and its dependencies, as the Lambda python runtime provides them (with their bytecode,
    written by ``python``'s pip), at the dev virtualenv's versions."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in RUNTIME_DISTRIBUTIONS]
    return _install(CACHE / "lambda-runtime", pins, python=python)


@dataclass(frozen=True)
class FunctionEnv:
    """What a child process needs to import one function as Lambda would."""

    task_root: Path
    package_dir: Path
    runtime_dir: Path
    python: str = sys.executable
    read_only: bool = False  # run with -B: no bytecode written, as in /var/task

    @property
    def pythonpath(self) -> str:
        return os.pathsep.join(str(p) for p in dict.fromkeys((self.task_root, self.package_dir, self.runtime_dir)))

    def has(self, distribution: str) -> bool:
        return any(self.package_dir.glob(f"{distribution}-*.dist-info"))


def lambda_package(directory: str, python: Interpreter, *, compiled: bool) -> FunctionEnv:
    """The artifacts directory of ``make build-<Function>``, built for ``python`` (see the module's
    docstring); ``compiled=False`` is what the build ships when it finds no Python 3.13."""
    source = ROOT / "functions" / directory
    deps = _install(
        CACHE / f"deps-{directory}",
        requirement_lines(source / "requirements.txt"),
        compile_bytecode=False,
        python=python,
        only_binary=True,
    )
    root = CACHE / f"artifacts-{directory}-{python.cache_tag}-{'pyc' if compiled else 'nopyc'}"
    if root.exists():
        shutil.rmtree(root)
    no_bytecode = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(deps, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".complete"))
    shutil.copytree(ROOT / "src" / "signin_links", root / "signin_links", ignore=no_bytecode)
    for module in source.glob("*.py"):
        shutil.copy2(module, root / module.name)
    if (source / "templates").is_dir():
        shutil.copytree(source / "templates", root / "templates", ignore=no_bytecode)
    if compiled:
        completed = subprocess.run(
            [python.executable, "-m", *COMPILEALL, str(root)], capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(f"compileall of {root} failed:\n{(completed.stderr or completed.stdout)[-3000:]}")
    return FunctionEnv(root, root, runtime_dir(python), python=python.executable, read_only=True)


# What each floor (bench/floors/<kind>/app.py) ships, at the versions the functions pin.
FLOOR_DISTRIBUTIONS = {
    "mint": ("cryptography", "cffi", "pycparser"),
    "accept": ("PyJWT", "cryptography", "cffi", "pycparser"),
}
FLOOR_PINS_FROM = {"mint": "mint_link", "accept": "accept_token"}


def floor_requirements(kind: str) -> list[str]:
    """The floor's dependencies, pinned as the matching function pins them."""
    wanted = {name.lower() for name in FLOOR_DISTRIBUTIONS[kind]}
    pins = requirement_lines(ROOT / "functions" / FLOOR_PINS_FROM[kind] / "requirements.txt")
    found = [pin for pin in pins if pin.split("==", 1)[0].strip().lower() in wanted]
    if len(found) != len(wanted):
        raise RuntimeError(f"functions/{FLOOR_PINS_FROM[kind]}/requirements.txt does not pin all of {sorted(wanted)}")
    return found


def floor_package(kind: str, python: Interpreter) -> FunctionEnv:
    """The floor handler ``bench/floors/<kind>/app.py`` packaged as :func:`lambda_package` packages a
    function (its dependencies ``--no-deps`` for ``python``, bytecode by the Makefile's compileall)."""
    deps = _install(
        CACHE / f"deps-floor-{kind}", floor_requirements(kind), compile_bytecode=False, python=python, only_binary=True
    )
    root = CACHE / f"artifacts-floor-{kind}-{python.cache_tag}"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(deps, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".complete"))
    shutil.copy2(ROOT / "bench" / "floors" / kind / "app.py", root / "app.py")
    completed = subprocess.run(
        [python.executable, "-m", *COMPILEALL, str(root)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"compileall of {root} failed:\n{(completed.stderr or completed.stdout)[-3000:]}")
    return FunctionEnv(root, root, runtime_dir(python), python=python.executable, read_only=True)


def runtime_only_env(python: Interpreter | None = None) -> FunctionEnv:
    """Only the runtime's boto3: the baseline's environment (read-only, as Lambda's runtime is)."""
    python = python or current_python()
    runtime = runtime_dir(python)
    return FunctionEnv(runtime, runtime, runtime, python=python.executable, read_only=True)


def bytecode_census(root: Path, cache_tag: str) -> dict[str, int]:
    """How many ``.py`` files under ``root`` have bytecode for ``cache_tag`` beside them, and how
    many of those are unchecked-hash ``.pyc`` (PEP 552 flags == 0b01: loaded without a stat of the
    source), the kind the Makefile writes."""
    sources = with_pyc = unchecked = 0
    for path in root.rglob("*.py"):
        sources += 1
        pyc = path.parent / "__pycache__" / f"{path.stem}.{cache_tag}.pyc"
        if pyc.is_file():
            with_pyc += 1
            with pyc.open("rb") as handle:
                header = handle.read(8)
            unchecked += int.from_bytes(header[4:8], "little") == 0b01
    return {"py_files": sources, "with_pyc": with_pyc, "unchecked_hash_pyc": unchecked}
