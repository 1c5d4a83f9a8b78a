"""Runs in a fresh ``python -S -s`` process whose ``sys.path`` mirrors one Lambda function.

Usage: ``python -S -s -c <this file's text> <spec.json>``. Prints one line ``BENCH_RESULT {...}``.

``mode: "boto3"``   time ``import boto3`` (the baseline).
``mode: "handler"`` time ``import app`` (the handler module, as Lambda imports it: its init, which may
                    already call AWS), then the first request through ``lambda_handler``; AWS is
                    answered in memory at botocore's HTTP layer (``_fake_aws.py``) from the moment
                    ``botocore.httpsession`` is imported. Then, when asked, ``warm`` more requests
                    (CPU time each), the bare cryptographic floor of the same work (PyJWT only), and
                    (``profile``) a cProfile of the warm requests.

Only the standard library is imported before the timed section (``_fake_aws.py`` uses json, re, uuid
and collections, which botocore imports anyway).
"""

import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import time

spec = json.loads(open(sys.argv[1], encoding="utf-8").read())  # noqa: SIM115 - stdlib only, tiny
result = {}
fake = None

if spec["mode"] == "handler":
    # -- not timed: the fake AWS, patched into botocore when botocore.httpsession is first imported --
    loader_spec = importlib.util.spec_from_file_location("_fake_aws", spec["fake_aws"])
    fake_module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(fake_module)
    fake = fake_module.FakeAws(spec["secrets"])
    fake.items.update(spec.get("items") or {})

    class _PatchBotocore(importlib.abc.MetaPathFinder):
        """Finds ``botocore.httpsession`` as usual and installs the fake right after it executes."""

        def find_spec(self, fullname, path, target=None):
            if fullname != "botocore.httpsession":
                return None
            found = importlib.machinery.PathFinder.find_spec(fullname, path)
            if found is None or found.loader is None:
                return found
            original_exec = found.loader.exec_module

            def exec_module(module):
                original_exec(module)
                fake.install()

            found.loader.exec_module = exec_module
            return found

    sys.meta_path.insert(0, _PatchBotocore())

wall0, cpu0 = time.perf_counter(), time.process_time()
if spec["mode"] == "boto3":
    import boto3  # noqa: F401

    result["import_ms"] = (time.perf_counter() - wall0) * 1000
    result["import_cpu_ms"] = (time.process_time() - cpu0) * 1000
else:
    import app  # the handler module: functions/<dir>/app.py (or a floor), first on sys.path

    result["import_ms"] = (time.perf_counter() - wall0) * 1000
    result["import_cpu_ms"] = (time.process_time() - cpu0) * 1000
    result["init_calls"] = dict(fake.calls)
    fake.calls.clear()

    class Context:
        function_name = "bench-function"
        function_version = "$LATEST"
        memory_limit_in_mb = 512
        invoked_function_arn = spec["function_arn"]
        aws_request_id = "bench-request"
        log_group_name = "/aws/lambda/bench-function"
        log_stream_name = "bench"

        def get_remaining_time_in_millis(self):
            return 10_000

    context = Context()
    event = spec["event"]

    wall1, cpu1 = time.perf_counter(), time.process_time()
    response = app.lambda_handler(json.loads(json.dumps(event)), context)
    result["first_request_ms"] = (time.perf_counter() - wall1) * 1000
    result["first_request_cpu_ms"] = (time.process_time() - cpu1) * 1000
    result["status"] = response.get("statusCode")
    result["cold_calls"] = dict(fake.calls)
    result["rsa_loaded"] = "cryptography.hazmat.primitives.asymmetric.rsa" in sys.modules
    result["cryptography_loaded"] = "cryptography" in sys.modules
    result["pyjwt_loaded"] = "jwt" in sys.modules
    result["xray_sdk_loaded"] = "aws_xray_sdk" in sys.modules

    warm = int(spec.get("warm") or 0)
    if warm:
        fake.calls.clear()
        statuses = set()
        events = [json.loads(json.dumps(event)) for _ in range(warm)]  # copies made outside the timing
        profiler = None
        if spec.get("profile"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu_start = time.process_time()
        for request in events:
            statuses.add(app.lambda_handler(request, context).get("statusCode"))
        result["warm_cpu_us"] = (time.process_time() - cpu_start) / warm * 1e6
        if profiler is not None:
            import io
            import pstats

            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats(spec.get("profile_sort") or "tottime").print_stats(int(spec.get("profile_lines") or 40))
            result["profile"] = out.getvalue()
        result["warm_statuses"] = sorted(statuses)
        result["warm_calls_per_request"] = {name: count / warm for name, count in fake.calls.items()}

        floor = spec.get("floor")
        if floor:
            import base64

            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            def segment(data):
                return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

            signer = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(floor["ticket_seed"]))
            claims = floor["claims"]
            header = segment(json.dumps({"alg": "EdDSA", "kid": "bench", "typ": "JWT"}).encode())
            if floor["kind"] == "mint":  # the floor of a mint: one Ed25519-signed compact JWS
                cpu_start = time.process_time()
                for _ in range(warm):
                    signing_input = f"{header}.{segment(json.dumps(claims, separators=(',', ':')).encode())}"
                    token = f"{signing_input}.{segment(signer.sign(signing_input.encode()))}"
            else:  # the floor of an accept: EdDSA decode + RS256 encode (keys parsed once, as we do)
                import jwt
                from cryptography.hazmat.primitives.serialization import load_pem_private_key

                public = signer.public_key()
                signing_input = f"{header}.{segment(json.dumps(claims).encode())}"
                token = f"{signing_input}.{segment(signer.sign(signing_input.encode()))}"
                session_key = load_pem_private_key(floor["session_key_pem"].encode("ascii"), password=None)
                headers = {"kid": "bench", "typ": "JWT"}
                cpu_start = time.process_time()
                for _ in range(warm):
                    jwt.decode(token, public, algorithms=["EdDSA"])
                    jwt.encode(floor["session_claims"], session_key, algorithm="RS256", headers=headers)
            elapsed = time.process_time() - cpu_start
            result["floor_cpu_us"] = elapsed / warm * 1e6
    fake.uninstall()

result["modules"] = len(sys.modules)
result["python"] = sys.version.split()[0]
result["dont_write_bytecode"] = sys.flags.dont_write_bytecode
sys.stdout.flush()
print("BENCH_RESULT " + json.dumps(result))
