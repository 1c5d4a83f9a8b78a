"""The Docker-free local stack: ``python -m local.stack`` (``make local``).

1. Binds the API's address first (``HOST``/``PORT``, default 127.0.0.1:3000; ``PORT=0`` picks a
   free port), so the local URL is known before anything else.
2. Starts moto's server on 127.0.0.1 and a free port, requests serialised (``local.emulator``).
3. Creates the resources ``template.yaml`` declares (``local.resources``) and resolves each
   function's environment from ``Globals`` and its own ``Environment`` (``local.template``).
   Parameters: ``LOCAL_PARAMETER_<Name>=value`` overrides a template parameter; by default the
   stack's own origin is added to ``AllowedRedirectOrigins`` and ``AcceptBaseUrl`` is the local URL.
4. Sets the union of the functions' environments once (``local.runtime``), then starts one worker
   process per function (an execution environment: it imports the handler by file path, so an
   init error is reported here), and serves the template's ``HttpApi`` routes as payload 2.0
   events (``local.apigw``) on a ``ThreadingHTTPServer``. Each function scales out to
   ``LOCAL_CONCURRENCY`` worker processes (default 4), each running one invocation at a time.
   Each ``AWS::Pipes::Pipe`` from a table's stream to a bus runs in a thread (``local.pipes``):
   the audit events reach the local bus as AWS would deliver them. ``LOCAL_PIPE_PUT_EVENTS_FAILURES=n``
   makes each pipe's first n ``PutEvents`` calls fail, to watch it retry.
5. Prints the URL, the secret key (``LOCAL_SECRET_KEY`` overrides the default), the moto endpoint
   and a ready-to-run curl; writes the same, machine-readable, to ``.local-stack/state.json``
   (``LOCAL_STACK_STATE`` moves it) and removes it on exit. Ctrl-C or SIGTERM stops it cleanly,
   worker processes included.

The request log has method, route key, status and milliseconds: never a path, query string, body
or header, which could carry a token or a key.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from local.apigw import (
    MAX_BODY_BYTES,
    HttpRequest,
    HttpResponse,
    Router,
    http_event,
    http_response,
    internal_error,
    not_found,
    too_large,
)
from local.emulator import REGION, MotoServer, aws_client
from local.pipes import PipeEmulator, PipeSpec, faulty_put_events
from local.resources import DEFAULT_SECRET_KEY, STACK_NAME, LocalResources, create_resources
from local.runtime import (
    DEFAULT_CONCURRENCY,
    InvocationError,
    LocalFunction,
    apply_environment,
    function_env,
    union_environment,
)
from local.template import (
    ROOT,
    FunctionSpec,
    Route,
    function_environment,
    functions,
    http_routes,
    load_template,
)

DEFAULT_STATE = ROOT / ".local-stack" / "state.json"
PARAMETER_PREFIX = "LOCAL_PARAMETER_"


def state_path() -> Path:
    return Path(os.environ.get("LOCAL_STACK_STATE") or DEFAULT_STATE)


def local_parameters(template: dict[str, Any], url: str, env: dict[str, str]) -> dict[str, str]:
    """Parameter overrides for the local stack: ``LOCAL_PARAMETER_<Name>`` from ``env``, then the
    local defaults (the stack's own origin allowed for redirects; links point at the local URL)."""
    declared = template.get("Parameters") or {}
    overrides = {
        name[len(PARAMETER_PREFIX) :]: value for name, value in env.items() if name.startswith(PARAMETER_PREFIX)
    }
    # Unless set (even to "", as a first deploy has it: links then come from AcceptBaseUrlParameter).
    if "AcceptBaseUrl" in declared and "AcceptBaseUrl" not in overrides:
        overrides["AcceptBaseUrl"] = str(declared["AcceptBaseUrl"].get("Default", "")) or url
    if "AllowedRedirectOrigins" in declared:
        current = overrides.get("AllowedRedirectOrigins", str(declared["AllowedRedirectOrigins"].get("Default", "")))
        origins = [item.strip() for item in current.split(",") if item.strip()]
        if url not in origins:
            origins.append(url)
        overrides["AllowedRedirectOrigins"] = ",".join(origins)
    return overrides


@dataclass
class LocalStack:
    """The template's resources in the emulator and its functions ready to run, with their environments.

    ``build(processes=True)`` (what :func:`main` does) runs each function in worker processes, one
    per execution environment; the default runs handlers in this process, one call at a time (for
    tools that observe the handlers from inside, like the AWS-call counters in ``bench/``).
    """

    url: str
    endpoint: str
    secret_key: str
    parameters: dict[str, str]
    resources: LocalResources
    functions: dict[str, LocalFunction]
    environments: dict[str, dict[str, str]]  # logical id -> full environment
    routes: list[Route]
    router: Router = field(init=False)
    init_errors: dict[str, str] = field(default_factory=dict)
    pipe_put_events_failures: int = 0  # LOCAL_PIPE_PUT_EVENTS_FAILURES: injected EventBridge outage
    pipes: list[PipeEmulator] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.router = Router(self.routes)

    @classmethod
    def build(
        cls,
        *,
        url: str,
        endpoint: str,
        secret_key: str = DEFAULT_SECRET_KEY,
        env: dict[str, str] | None = None,
        template: dict[str, Any] | None = None,
        specs: dict[str, FunctionSpec] | None = None,
        processes: bool = False,
    ) -> LocalStack:
        template = template or load_template()
        parameters = local_parameters(template, url, dict(os.environ if env is None else env))
        found, resolver = create_resources(
            template, endpoint, parameters=parameters, secret_key=secret_key, stack_name=STACK_NAME, api_url=url
        )
        specs = specs if specs is not None else functions(template)
        environments = {
            logical_id: function_env(function_environment(spec, resolver), endpoint)
            for logical_id, spec in specs.items()
        }
        settings = env if env is not None else os.environ
        concurrency = int(settings.get("LOCAL_CONCURRENCY") or DEFAULT_CONCURRENCY)
        local_functions = {
            logical_id: LocalFunction(
                spec=spec, name=found.ref(logical_id) or logical_id, concurrency=concurrency, processes=processes
            )
            for logical_id, spec in specs.items()
        }
        return cls(
            url=url,
            endpoint=endpoint,
            secret_key=secret_key,
            parameters=parameters,
            resources=found,
            functions=local_functions,
            environments=environments,
            routes=http_routes(template),
            pipe_put_events_failures=int(settings.get("LOCAL_PIPE_PUT_EVENTS_FAILURES") or 0),
        )

    def activate(self) -> None:
        """Set the functions' environment (their union), then initialise every function: import its
        handler, or (with worker processes) start its first worker, all at once. The environment is
        set first: workers inherit it when they are spawned.

        A handler that fails to import is reported and its routes answer 500, as API Gateway does
        for a function whose init failed; the other routes keep working.
        """
        apply_environment(union_environment(self.environments))
        self.resources.seed_keyrings(self.endpoint)

        def initialise(item: tuple[str, LocalFunction]) -> tuple[str, BaseException | None]:
            try:
                item[1].initialise()
            except Exception as exc:  # report and go on: the other functions still serve
                return item[0], exc
            return item[0], None

        workers = len(self.functions) if any(function.processes for function in self.functions.values()) else 1
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for logical_id, error in pool.map(initialise, self.functions.items()):
                if error is None:
                    continue
                if isinstance(error, InvocationError):
                    reason, frames = f"{error.error_type}: {error.error_message}", "".join(error.stack_trace)
                else:
                    reason, frames = f"{type(error).__name__}: {error}", ""
                self.init_errors[logical_id] = reason
                print(f"!! {logical_id} failed to initialise: {reason}\n{frames}", file=sys.stderr, flush=True)

    def start_pipes(self) -> None:
        """Run each pipe from a table's stream to a bus in a thread (``local.pipes``), its enrichment
        invoked as the template's function. Call after :meth:`activate` (the functions must be up)."""
        arns = {self.resources.att(logical_id, "Arn"): logical_id for logical_id in self.functions}

        def enrich(arn: str, batch: list[dict[str, Any]]) -> Any:
            # The function's ARN, or an alias of it (``arn:...:function:name:live``).
            logical_id = arns.get(arn) or arns.get(arn.rsplit(":", 1)[0])
            if logical_id is None:
                raise LookupError(f"the enrichment {arn} is not a function of the template")
            return self.functions[logical_id].invoke(batch)

        for logical_id, pipe in self.resources.pipes.items():
            spec = PipeSpec.from_properties(logical_id, pipe["name"], pipe["arn"], pipe["properties"])
            if not spec.is_stream_to_bus:
                print(f"!! {logical_id}: only pipes from a DynamoDB stream to a bus are emulated", file=sys.stderr)
                continue
            events = aws_client("events", self.endpoint)
            if self.pipe_put_events_failures:
                events = faulty_put_events(events, self.pipe_put_events_failures)
            emulator = PipeEmulator(
                spec,
                streams=aws_client("dynamodbstreams", self.endpoint),
                events=events,
                sqs=aws_client("sqs", self.endpoint),
                enrich=enrich,
            )
            self.pipes.append(emulator.start())

    def close(self) -> None:
        """Stop the pipes, then every function's worker processes (in-process functions have none)."""
        for pipe in self.pipes:
            pipe.stop()
        self.pipes.clear()
        for function in self.functions.values():
            function.close()

    def state(self) -> dict[str, Any]:
        """Everything a test or tool needs to talk to this stack, as JSON."""
        return {
            "pid": os.getpid(),
            "url": self.url,
            "secret_key": self.secret_key,
            "moto_endpoint": self.endpoint,
            "region": REGION,
            "stack_name": STACK_NAME,
            "parameters": self.parameters,
            "tables": self.resources.of_kind("AWS::DynamoDB::Table"),
            "secrets": self.resources.of_kind("AWS::SecretsManager::Secret"),
            "event_buses": self.resources.of_kind("AWS::Events::EventBus"),
            "buckets": self.resources.of_kind("AWS::S3::Bucket"),
            "queues": self.resources.of_kind("AWS::SQS::Queue"),
            "pipes": {logical_id: pipe["arn"] for logical_id, pipe in self.resources.pipes.items()},
            "resources": self.resources.to_json(),
            "functions": {
                logical_id: {
                    "name": function.name,
                    "handler": function.spec.handler,
                    "source_dir": str(function.spec.source_dir),
                    "environment": self.environments[logical_id],
                }
                for logical_id, function in self.functions.items()
            },
            "routes": [
                {"route_key": f"{route.method} {route.path}", "function": route.function} for route in self.routes
            ],
            "curl": curl_command(self.url, self.secret_key),
        }

    def call(self, request: HttpRequest, domain_name: str) -> tuple[HttpResponse, str]:
        """Serve one request; returns the response and the route key (for the log)."""
        match = self.router.match(request.method, request.raw_path)
        if match is None:
            return not_found(), f"{request.method} (no route)"
        function = self.functions[match.route.function]
        if match.route.function in self.init_errors:
            return internal_error(), match.route_key
        event = http_event(request, match, domain_name=domain_name)
        try:
            result = function.invoke(event)
        except InvocationError as exc:  # the invocation failed (in a worker): API Gateway answers 500
            # The type and the frames only, never the event: a message could quote a token.
            frames = "".join(exc.stack_trace)
            print(f"!! {match.route.function} failed: {exc.error_type}\n{frames}", file=sys.stderr, flush=True)
            return internal_error(), match.route_key
        except Exception as exc:  # the handler raised (in this process): API Gateway answers 500
            frames = "".join(traceback.format_tb(exc.__traceback__))
            print(f"!! {match.route.function} raised {type(exc).__name__}\n{frames}", file=sys.stderr, flush=True)
            return internal_error(), match.route_key
        return http_response(result), match.route_key


def curl_command(url: str, secret_key: str) -> str:
    """The request of Clerk's guide, pointed at ``url``."""
    body = json.dumps({"user_id": "user_123"})
    return (
        f"curl '{url}/v1/sign_in_tokens' -X POST "
        f"-H {shlex.quote('Authorization: Bearer ' + secret_key)} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )


DIGITS = re.compile(rb"[0-9]+")
HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")


def _size(raw: bytes, digits: re.Pattern[bytes], base: int) -> int:
    """A Content-Length or chunk size, strictly; ``ValueError`` for anything but digits."""
    if not digits.fullmatch(raw) or len(raw) > 32:
        raise ValueError("malformed size")
    return int(raw, base)


class ApiRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, a keep-alive client waits for the
    # peer's delayed ACK (~40 ms) on every request after the first.
    disable_nagle_algorithm = True
    server: ApiServer
    server_version = "signin-links-local"
    sys_version = ""

    def do_GET(self) -> None:
        self.serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, QUERY, ...) reaches the router too, which answers 404 to a route
        it does not know, as API Gateway does; http.server alone would answer 501 with an HTML page."""
        if name.startswith("do_"):
            return self.do_GET
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default line holds the request target, whose query string can carry a token."""

    def read_body(self) -> bytes | None:
        """The request body; ``None`` if it is over the limit (the connection is then closed).

        Sizes are read strictly (digits only; hex digits for a chunk): ``int`` alone would take
        ``-5``, ``+5``, ``1_0`` or ``0x10``, and a negative size read the socket to its end (a hung
        thread). Anything else raises ``ValueError``: a 400."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size = _size(self.rfile.readline().split(b";", 1)[0].strip() or b"0", HEX_DIGITS, 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = _size((self.headers.get("Content-Length") or "0").strip().encode("latin-1"), DIGITS, 10)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def serve(self) -> None:
        started = time.perf_counter()
        route_key = f"{self.command} (no route)"
        try:
            body = self.read_body()
        except ValueError:
            body, response = (
                b"",
                HttpResponse(400, [("Content-Type", "application/json")], b'{"message":"Bad Request"}'),
            )
            self.close_connection = True
        else:
            response = too_large() if body is None else HttpResponse(0, [])
        if response.status == 0:
            request = HttpRequest(
                method=self.command,
                target=self.path,
                headers=list(self.headers.items()),
                body=body or b"",
                source_ip=self.client_address[0],
                protocol=self.request_version,
            )
            domain_name = self.headers.get("Host") or urlsplit(self.server.stack.url).netloc
            response, route_key = self.server.stack.call(request, domain_name)
        self.send_response_only(response.status)
        self.send_header("Date", self.date_time_string())
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)
        elapsed = (time.perf_counter() - started) * 1000
        print(f"{route_key} -> {response.status} ({elapsed:.0f} ms)", file=sys.stderr, flush=True)


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 resets a burst of concurrent clients
    stack: LocalStack


def display_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def banner(stack: LocalStack, state_file: Path) -> str:
    routes = "\n".join(f"    {route.method:<6} {route.path}  ->  {route.function}" for route in stack.routes)
    return f"""
signin-links local stack is up (Ctrl-C stops it)

  API          {stack.url}
  Secret key   {stack.secret_key}
  moto (AWS)   {stack.endpoint}   (AWS_ENDPOINT_URL={stack.endpoint} AWS_ACCESS_KEY_ID=testing \
AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={REGION})
  State        {state_file}
  Routes
{routes}

Mint a sign-in link:

  {curl_command(stack.url, stack.secret_key)}
"""


def write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    temporary.chmod(0o600)  # it holds the local secret key
    temporary.replace(path)


def remove_state(path: Path) -> None:
    """Remove the state file if it is this process's (another stack may have replaced it)."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    host = os.environ.get("HOST") or "127.0.0.1"
    port = int(os.environ.get("PORT") or 3000)
    secret_key = os.environ.get("LOCAL_SECRET_KEY") or DEFAULT_SECRET_KEY
    signal.signal(signal.SIGTERM, _stop)
    server = ApiServer((host, port), ApiRequestHandler)
    url = display_url(host, server.server_address[1])
    state_file = state_path()
    moto = MotoServer()
    stack: LocalStack | None = None
    try:
        moto.start()
        stack = LocalStack.build(url=url, endpoint=moto.endpoint, secret_key=secret_key, processes=True)
        stack.activate()
        stack.start_pipes()
        server.stack = stack
        write_state(state_file, stack.state())
        print(banner(stack, state_file), flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nlocal stack stopped", file=sys.stderr, flush=True)
    finally:
        server.server_close()
        if stack is not None:
            stack.close()  # every worker process, before the emulator they talk to
        moto.stop()
        remove_state(state_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
