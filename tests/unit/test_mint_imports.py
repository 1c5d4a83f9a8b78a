"""What the mint loads: Ed25519 from ``cryptography`` to sign, and nothing else of it, and no PyJWT.

PyJWT, when ``cryptography`` is installed (the mint ships it to sign), imports every algorithm
``cryptography`` has (RSA, EC, Ed448, X.509: about 100 ms of a cold start, docs/performance.md).
The mint signs one kind of token, so ``tickets.py`` assembles the JWS itself. This test imports
every ``signin_links`` module ``functions/mint_link/app.py`` imports (at the top or inside a
function: the batch path too) in a fresh interpreter, signs a token, and lists what was loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from tests.conftest import ROOT

APP = ROOT / "functions" / "mint_link" / "app.py"


def mint_imports() -> list[str]:
    modules = set()
    for node in ast.walk(ast.parse(APP.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("signin_links"):
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names if node.module == "signin_links")
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names if alias.name.startswith("signin_links"))
    return sorted(modules)


CHILD = """
import json, sys, importlib
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
import os
from signin_links.keyring import Key
from signin_links.tickets import sign_ticket
key = Key(kid="k", created_at=0, activates_at=0, seed=os.urandom(32))  # as read from the keyring
token = sign_ticket(key, sid="sit_x", issued_at=0, expires_in_seconds=60)
print(json.dumps({"modules": sorted(sys.modules), "token": token.count(".")}))
"""


def test_the_mint_loads_ed25519_and_no_other_algorithm_nor_pyjwt() -> None:
    modules = mint_imports()
    assert {"signin_links.sign_in_tokens", "signin_links.http", "signin_links.batch", "signin_links.events"} <= set(
        modules
    )
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(result.stdout)
    assert loaded["token"] == 2  # a compact JWS was made
    names = set(loaded["modules"])
    assert "cryptography.hazmat.primitives.asymmetric.ed25519" in names
    assert "jwt" not in names
    assert not {name for name in names if name.startswith("jwt.")}
    others = {
        name
        for name in names
        if name.startswith("cryptography.hazmat.primitives.asymmetric.") and not name.endswith(".ed25519")
    }
    assert others <= {"cryptography.hazmat.primitives.asymmetric.utils"}, sorted(others)
    assert "cryptography.x509" not in names
