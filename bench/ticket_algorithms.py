"""Why sign-in tokens are Ed25519: what each signature algorithm we considered costs.

Only the mint holds the ticket key: every other function verifies with a public key, so HS256 (one
shared secret) cannot serve. The candidates, each through PyJWT as the
verifiers use it: EdDSA (Ed25519), ES256 (P-256), RS256 (RSA-2048). Measured in one fresh process
of Lambda's Python (as ``bench/cold_start.py`` finds it), with the accept's package on ``sys.path``
(PyJWT and ``cryptography`` as shipped): CPU per signature and per verification (each the least of
5 rounds of ``N``, keys parsed once), and the length of the same ticket's token. HS256, a shared
secret, is the baseline. Then the imports, each in fresh ``python -S -s -B`` processes (medians of
9, interleaved): PyJWT with ``cryptography`` installed (what a verifier pays, and what a mint that
imported PyJWT would pay) against ``cryptography``'s Ed25519 module alone (what the mint imports,
signing with ``tickets.sign_ticket``'s own compact JWS).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench import Figure, Options, benchmark, median
from bench._envs import FunctionEnv, lambda_package
from bench.cold_start import _interpreter

OPS = r"""
import json, sys, time
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from signin_links.keyring import Key
from signin_links.tickets import sign_ticket, ticket_claims

n, rounds = int(sys.argv[1]), 5
now = int(time.time())
claims = ticket_claims(sid="sit_" + "A" * 22, issued_at=now, expires_in_seconds=2592000,
                       redirect_url="https://app.example.com/welcome", user_id="user_2TkzQ6HYQwtJtPejPLtQiF")
secret = b"s" * 32
ed = ed25519.Ed25519PrivateKey.generate()
key = Key(kid="ed25519-bench", created_at=now, activates_at=now, seed=ed.private_bytes_raw())
p256 = ec.generate_private_key(ec.SECP256R1())
rsa2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
headers = {"kid": "bench", "typ": "JWT"}
signers = {
    "HS256": (lambda: jwt.encode(claims, secret, algorithm="HS256", headers=headers), secret, ["HS256"]),
    "EdDSA": (lambda: sign_ticket(key, sid=claims["sid"], issued_at=now, expires_in_seconds=2592000,
                                  redirect_url=claims["rdr"], user_id=claims["uid"]), ed.public_key(), ["EdDSA"]),
    "EdDSA (PyJWT encode)": (lambda: jwt.encode(claims, ed, algorithm="EdDSA", headers=headers), ed.public_key(),
                             ["EdDSA"]),
    "ES256": (lambda: jwt.encode(claims, p256, algorithm="ES256", headers=headers), p256.public_key(), ["ES256"]),
    "RS256": (lambda: jwt.encode(claims, rsa2048, algorithm="RS256", headers=headers), rsa2048.public_key(),
              ["RS256"]),
}
options = {"verify_exp": False}
result = {}
for name, (sign, public, algorithms) in signers.items():
    token = sign()
    jwt.decode(token, public, algorithms=algorithms, options=options)  # it verifies
    sign_us, verify_us = [], []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            sign()
        sign_us.append((time.process_time() - start) / n * 1e6)
        start = time.process_time()
        for _ in range(n):
            jwt.decode(token, public, algorithms=algorithms, options=options)
        verify_us.append((time.process_time() - start) / n * 1e6)
    result[name] = {"sign_us": min(sign_us), "verify_us": min(verify_us), "length": len(token),
                    "sign_rounds": sign_us, "verify_rounds": verify_us}
result["python"] = sys.version.split()[0]
print("BENCH_RESULT " + json.dumps(result))
"""

IMPORTS = {
    "PyJWT, cryptography installed": "import jwt",
    "cryptography's Ed25519 alone": "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey",
}
IMPORT_CHILD = r"""
import sys, time
cpu = time.process_time()
exec(sys.argv[1])
print("BENCH_RESULT %.3f" % ((time.process_time() - cpu) * 1000))
"""


def _child(environment: FunctionEnv, code: str, *args: str) -> str:
    completed = subprocess.run(
        [environment.python, "-S", "-s", "-B", "-c", code, *args],
        env={"PYTHONPATH": environment.pythonpath, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"ticket algorithms child failed:\n{completed.stderr[-2000:]}")
    return lines[-1].removeprefix("BENCH_RESULT ")


@benchmark("ticket algorithms", order=25)
def ticket_algorithms(options: Options) -> list[Figure]:
    python, about = _interpreter()
    environment = lambda_package("accept_token", python, compiled=True)
    n = options.runs(full=2000, quick=200)
    ops: dict[str, Any] = json.loads(_child(environment, OPS, str(n)))
    base = ops["HS256"]
    detail = {"interpreter": about, "per_round": n, "rounds": {k: v for k, v in ops.items() if k != "python"}}
    figures = []
    for name in ("EdDSA", "EdDSA (PyJWT encode)", "ES256", "RS256"):
        row = ops[name]
        figures += [
            Figure("ticket algorithms", f"{name}: sign", row["sign_us"], "us", "HS256 sign", base["sign_us"],
                   note="tickets.sign_ticket" if name == "EdDSA" else "PyJWT", detail=detail),
            Figure("ticket algorithms", f"{name}: verify (PyJWT)", row["verify_us"], "us", "HS256 verify",
                   base["verify_us"], detail=detail),
            Figure("ticket algorithms", f"{name}: token length", row["length"], "chars", "HS256 token",
                   base["length"], detail=detail),
        ]  # fmt: skip
    samples: dict[str, list[float]] = {label: [] for label in IMPORTS}
    for _ in range(options.runs(full=9, quick=3)):
        for label, statement in IMPORTS.items():
            samples[label].append(float(_child(environment, IMPORT_CHILD, statement)))
    pyjwt, ed25519 = (median(samples[label]) for label in IMPORTS)
    figures.append(
        Figure("ticket algorithms", "import PyJWT (cryptography installed)", pyjwt, "ms",
               "import cryptography's Ed25519 alone", ed25519, note="CPU, fresh process, median",
               detail={"interpreter": about, "samples_ms": samples})
    )  # fmt: skip
    return figures
