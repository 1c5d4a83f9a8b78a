"""The Docker-free local stack: ``python -m local.stack`` (``make local``).

1. Binds the API's address first (``HOST``/``PORT``, default 127.0.0.1:3000; ``PORT=0`` picks a
   free port), so the local URL is known before anything else.
2. Starts moto's server on 127.0.0.1 and a free port, requests serialised (``local.emulator``).
3. Creates the resources ``template.yaml`` declares (``local.resources``) and resolves each
   function's environment from ``Globals`` and its own ``Environment`` (``local.template``).
   Parameters: ``LOCAL_PARAMETER_<Name>=value`` overrides a template parameter; by default the
   stack's own origin is added to ``AllowedRedirectOrigins`` and ``AcceptBaseUrl`` is the local URL.
4. Sets the union of the functions' environments once (``local.environment``), then starts one worker
   process per function (an execution environment: it imports the handler by file path, so an
   init error is reported here), and serves the template's ``HttpApi`` routes as payload 2.0
   events (``local.apigw``) on a ``ThreadingHTTPServer``. Each function scales out to
   ``LOCAL_CONCURRENCY`` worker processes (default 4), each running one invocation at a time.
   Each ``AWS::Pipes::Pipe`` from a table's stream to a bus runs in a thread (``local.pipes``):
   the audit events reach the local bus as AWS would deliver them. ``LOCAL_PIPE_PUT_EVENTS_FAILURES=n``
   makes each pipe's first n ``PutEvents`` calls fail, to watch it retry. Each SQS event source
   mapping (``AWS::Lambda::EventSourceMapping``, SAM ``SQS`` events) polls its queue in threads
   (``local.event_sources``), and moto's SES v2 answers ``GetAccount`` and throttles ``SendEmail``
   at a new production account's quota (14 emails/s, 50,000 a day; ``LOCAL_SES_MAX_SEND_RATE``
   and ``LOCAL_SES_MAX_24_HOUR_SEND`` change it).
5. Prints the URL, the secret key (``LOCAL_SECRET_KEY`` overrides the default), the moto endpoint
   and a ready-to-run curl; writes the same, machine-readable, to ``.local-stack/state.json``
   (``LOCAL_STACK_STATE`` moves it) and removes it on exit. Ctrl-C or SIGTERM stops it cleanly,
   worker processes included.

The request log has method, route key, status and milliseconds: never a path, query string, body
or header, which could carry a token or a key.
"""

from __future__ import annotations

import hmac
import json
import os
import signal
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from local import local_routes, rotation
from local.account import REGION
from local.apigw import (
    HttpRequest,
    HttpResponse,
    Router,
    http_event,
    http_response,
    internal_error,
    message_response,
    not_found,
)
from local.async_invoke import ASYNC_PROPERTIES, AsyncConfig, AsyncInvoker
from local.banner import banner, clerk_frontend, curl_command
from local.emulator import MotoServer, aws_client
from local.environment import apply_environment, function_env, union_environment
from local.event_sources import QueuePoller, QueueSource, describe_sources, template_queue_sources
from local.http_server import ApiRequestHandler, ApiServer, display_url
from local.invocation import InvocationError
from local.outbox import verify_sender
from local.parameters import local_parameters, parameter_notes
from local.pipes import PipeEmulator, PipeSpec, faulty_put_events
from local.resources import DEFAULT_SECRET_KEY, STACK_NAME, LocalResources, create_resources
from local.rules import RuleEngine, RuleSpec, template_rules
from local.runtime import DEFAULT_CONCURRENCY, LocalFunction
from local.ses_quota import ses_quota
from local.state_file import remove_state, state_path, write_state
from local.template import FunctionSpec, Route, function_environment, functions, http_routes, load_template


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
    # EventBridge rules of the template (local.rules); delivered once start_rules() has run.
    rules: list[RuleSpec] = field(default_factory=list)
    async_configs: dict[str, AsyncConfig] = field(default_factory=dict)
    rule_engine: RuleEngine | None = None
    # `make rotate` (local.rotation): secret logical id -> the function its RotationSchedule names.
    rotations: dict[str, str] = field(default_factory=dict)
    emulator_lock: threading.Lock | None = None  # MotoServer.lock, when the emulator runs in this process
    notes: list[str] = field(default_factory=list)  # parameter overrides CloudFormation would refuse
    _rotating: threading.Lock = field(default_factory=threading.Lock)
    pipe_put_events_failures: int = 0  # LOCAL_PIPE_PUT_EVENTS_FAILURES: injected EventBridge outage
    pipes: list[PipeEmulator] = field(default_factory=list)
    # SQS event source mappings of the template (local.event_sources); polled once start_event_sources() ran.
    queue_sources: list[QueueSource] = field(default_factory=list)
    pollers: list[QueuePoller] = field(default_factory=list)

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
        verify_sender(endpoint, parameters)
        specs = specs if specs is not None else functions(template)
        specs = {logical_id: spec for logical_id, spec in specs.items() if _exists(template, resolver, logical_id)}
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
        rules = template_rules(
            template,
            resolver,
            active=lambda logical_id: _exists(template, resolver, logical_id),
            arn_of=lambda logical_id: found.att(logical_id, "Arn"),
        )
        function_ids = {
            name: logical_id
            for logical_id, function in local_functions.items()
            for name in (function.name, found.att(logical_id, "Arn"))
            if name
        }
        queue_sources = template_queue_sources(
            template,
            resolver.resolve,
            active=lambda logical_id: _exists(template, resolver, logical_id),
            # A function's name, ARN, or alias ARN (arn:...:function:name:live).
            function_of=lambda name: function_ids.get(name) or function_ids.get(name.rsplit(":", 1)[0]),
        )
        # SES's sending quota as moto answers and enforces it (local.emulator.ses_quota): a new
        # production account's unless LOCAL_SES_MAX_SEND_RATE / LOCAL_SES_MAX_24_HOUR_SEND say otherwise.
        ses_quota(
            float(settings.get("LOCAL_SES_MAX_SEND_RATE") or 14),
            float(settings.get("LOCAL_SES_MAX_24_HOUR_SEND") or 50_000),
        )
        async_configs = {
            logical_id: AsyncConfig.of(
                resolver.resolve({key: spec.properties[key] for key in ASYNC_PROPERTIES if key in spec.properties})
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
            routes=[route for route in http_routes(template) if route.function in local_functions],
            rules=rules,
            async_configs=async_configs,
            rotations=rotation.rotation_schedules(template),
            notes=parameter_notes(template, parameters),
            pipe_put_events_failures=int(settings.get("LOCAL_PIPE_PUT_EVENTS_FAILURES") or 0),
            queue_sources=queue_sources,
        )

    def activate(self) -> None:
        """Set the functions' environment (their union), then initialise every function: import its
        handler, or (with worker processes) start its first worker, all at once. The environment is
        set first: workers inherit it when they are spawned.

        A handler that fails to import is reported and its routes answer 500, as API Gateway does
        for a function whose init failed; the other routes keep working.
        """
        apply_environment(union_environment(self.environments))
        self.seed_keyrings()

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

    def seed_keyrings(self) -> None:
        """The keys the stack's rotation on creation would write (``LocalResources.seed_keyrings``);
        the ticket verification keys go where the rotation function publishes them."""
        publish_to = union_environment(self.environments).get("TICKET_VERIFICATION_KEYRING_SECRET_ID", "")
        self.resources.seed_keyrings(self.endpoint, publish_to)

    def local_route(self, request: HttpRequest) -> tuple[HttpResponse, str] | None:
        """The local stack's own routes under ``/_local/`` (``local.local_routes``)."""
        return local_routes.answer(request, self.rotate)

    def rotate(self, request: HttpRequest) -> HttpResponse:
        """``POST /_local/rotate`` ``{"secret": "<keyring secret logical id>"}``, with the stack's key as
        Bearer token: one rotation as Secrets Manager runs it (``local.rotation``)."""
        if request.method != "POST":
            return message_response(405, "Method Not Allowed")
        given = (request.header("authorization") or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.secret_key.encode()):
            return message_response(401, "the stack's secret key is required (Authorization: Bearer ...)")
        try:
            secret = json.loads(request.body or b"{}").get("secret")
        except (ValueError, AttributeError):
            secret = None
        choices = ", ".join(sorted(self.rotations))
        function_id = self.rotations.get(secret) if isinstance(secret, str) else None
        if function_id is None or function_id not in self.functions:
            return message_response(400, f"SECRET must name a rotated secret of the template: {choices}")
        assert isinstance(secret, str)
        arn = self.resources.ref(secret) or secret
        with self._rotating:
            try:
                result = rotation.rotate(arn, self.functions[function_id], self.endpoint, lock=self.emulator_lock)
            except rotation.RotationFailed as exc:
                print(f"!! rotation of {secret} failed at {exc.step}: {exc.error['errorType']}", file=sys.stderr)
                return message_response(422, str(exc))
        body = json.dumps({"secret": secret, "result": result}).encode()
        return HttpResponse(200, [("Content-Type", "application/json")], body)

    def start_rules(self, env: dict[str, str] | None = None) -> RuleEngine:
        """Create the template's EventBridge rules in the emulator and start delivering their events
        to the functions (``local.rules``). ``LOCAL_ASYNC_RETRY_SECONDS`` sets the first retry's delay."""
        values = os.environ if env is None else env
        names = {
            arn: logical_id
            for logical_id, item in self.resources.created.items()
            if (arn := item.attrs.get("Arn")) is not None
        }
        invoker = AsyncInvoker(
            functions={
                logical_id: function
                for logical_id, function in self.functions.items()
                if logical_id not in self.init_errors
            },
            async_configs=self.async_configs,
            endpoint=self.endpoint,
            names=names,
            retry_delay_s=float(values.get("LOCAL_ASYNC_RETRY_SECONDS") or 1.0),
        )
        engine = RuleEngine(rules=self.rules, invoker=invoker)
        engine.install()
        engine.start()
        self.rule_engine = engine
        return engine

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

    def start_event_sources(self) -> list[QueuePoller]:
        """Poll each SQS event source mapping's queue and invoke its function (``local.event_sources``).
        Call after :meth:`activate` (the functions must be up)."""
        for source in self.queue_sources:
            if source.not_local() is not None or source.function not in self.functions:
                continue
            if source.function in self.init_errors:
                continue
            poller = QueuePoller(source, self.functions[source.function], self.endpoint)
            self.pollers.append(poller.start())
        return self.pollers

    def close(self) -> None:
        """Stop the pipes, the queue pollers and the rules' deliveries, then every function's worker
        processes (in-process functions have none)."""
        for pipe in self.pipes:
            pipe.stop()
        self.pipes.clear()
        for poller in self.pollers:
            poller.stop()
        self.pollers.clear()
        if self.rule_engine is not None:
            self.rule_engine.close()
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
            "rules": self.rule_engine.describe() if self.rule_engine is not None else [],
            "event_sources": describe_sources(self.queue_sources, self.pollers),
            "curl": curl_command(self.url, self.secret_key),
            "rotations": sorted(self.rotations),
            "notes": self.notes,
            "clerk_frontend": clerk_frontend(self.url),
        }

    def call(self, request: HttpRequest, domain_name: str) -> tuple[HttpResponse, str]:
        """Serve one request; returns the response and the route key (for the log)."""
        local_answer = self.local_route(request)
        if local_answer is not None:
            return local_answer
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


def _exists(template: dict[str, Any], resolver: Any, logical_id: str) -> bool:
    """Whether a resource exists with these parameters: it has no Condition, or its Condition holds."""
    condition = (template["Resources"].get(logical_id) or {}).get("Condition")
    return not condition or bool(resolver.condition(condition))


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
        stack.emulator_lock = moto.lock
        stack.activate()
        stack.start_rules()
        stack.start_pipes()
        stack.start_event_sources()
        server.stack = stack
        state = stack.state()
        write_state(state_file, state)
        print(banner(state, state_file), flush=True)
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
