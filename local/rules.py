"""The template's EventBridge rules on the local stack: an event put on a local bus reaches its function.

moto evaluates rule patterns on ``PutEvents`` and delivers to a few target types itself (SQS queues,
other buses, log groups), but it cannot invoke a Lambda function without Docker (a rule with a
function target makes every matching ``PutEvents`` fail). So, for every rule of ``template.yaml``
(SAM ``EventBridgeRule`` / ``CloudWatchEvent`` events of a function or state machine, and
``AWS::Events::Rule`` resources), the local stack:

1. creates the rule in moto, on the bus and with the pattern the template gives (resolved like
   every other property: ``!Ref BatchEventSource`` is the parameter's local value). A target moto
   delivers to itself (an SQS queue, a bus, a log group) is created as it is. A function target is
   replaced by a queue of the rule's own, its *relay queue*; nothing else reads it.
2. polls the relay queues from one thread (``ReceiveMessage`` without long polling: the emulator
   serves one request at a time, so a long poll would hold up every other request) and hands each
   event (the rule's ``Input``, ``InputPath`` or ``InputTransformer`` applied) to the function as
   Lambda's *asynchronous* invocation does, retries and ``OnFailure`` destination included
   (``local.async_invoke``).
3. A rule's own ``RetryPolicy`` and ``DeadLetterConfig`` cover EventBridge failing to hand the
   event to Lambda (throttled or refused ``Invoke`` calls). Locally that hand-over is an in-memory
   queue and cannot fail, so they never come into play; the stack lists them.

Rules whose targets cannot run locally are listed (banner, state file) with the reason, never
dropped in silence: a Step Functions target (moto cannot run a state machine's Lambda tasks without
Docker), a schedule, a target service moto does not deliver to.

Events put by anyone reach the rules: ``aws events put-events --endpoint-url``, boto3, a function,
another part of the local stack. The stack's log shows each delivery (rule, function, outcome,
milliseconds), never an event's content.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.async_invoke import AsyncInvoker
from local.emulator import aws_client
from local.input_templates import MISSING, json_path, supported_path
from local.intrinsics import Resolver
from local.resources import STACK_NAME

RULE_EVENT_TYPES = ("EventBridgeRule", "CloudWatchEvent")
# EventBridge's defaults for a target without RetryPolicy.
DEFAULT_RULE_RETRY_ATTEMPTS = 185
DEFAULT_RULE_EVENT_AGE_S = 86400
POLL_IDLE_S = 0.1  # between polls when every relay queue was empty
LOCAL_TARGET_SERVICES = ("sqs", "events", "logs")  # moto delivers to these itself
WHOLE_EVENT = "<aws.events.event.json>"  # moto's input template variable for the event as it is
EVENT_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")


@dataclass(frozen=True)
class TargetSpec:
    """One target of a rule, resolved."""

    id: str
    arn: str
    function: str | None = None  # logical id of the template function it invokes
    state_machine: str | None = None  # logical id of the template state machine it starts
    input: str | None = None  # constant JSON text
    input_path: str | None = None
    input_transformer: dict[str, Any] | None = None
    retry_attempts: int = DEFAULT_RULE_RETRY_ATTEMPTS
    max_event_age_s: int = DEFAULT_RULE_EVENT_AGE_S
    dead_letter_arn: str | None = None
    role_arn: str | None = None

    @property
    def service(self) -> str:
        parts = self.arn.split(":")
        return parts[2] if len(parts) > 2 else ""

    def not_local(self) -> str | None:
        """Why this target cannot run locally (``None``: it can)."""
        if self.function is not None:
            if self.input_path is not None and not supported_path(self.input_path):
                return f"InputPath {self.input_path!r} is not supported locally (only $, names and [n] indices)"
            return None
        if self.state_machine is not None:
            return "a Step Functions target: moto cannot run a state machine's Lambda tasks without Docker"
        if self.service not in LOCAL_TARGET_SERVICES:
            return f"target service {self.service or self.arn!r} is not emulated locally"
        if self.input is not None or self.input_path is not None:
            return "Input/InputPath on a non-function target is not honoured by moto"
        return None


@dataclass(frozen=True)
class RuleSpec:
    """One EventBridge rule of the template, resolved against the local resources."""

    logical_id: str  # SAM's: <Function><EventName>; else the AWS::Events::Rule's own
    origin: str  # where the template declares it, for people: MintLinkFunction.Events.MintBatch
    bus: str  # event bus name ("default" if the template names none)
    pattern: dict[str, Any] | None
    targets: tuple[TargetSpec, ...]
    schedule: str | None = None
    enabled: bool = True

    @property
    def name(self) -> str:
        """The rule's name in the emulator (EventBridge allows 64 characters)."""
        return f"{STACK_NAME}-{self.logical_id}"[:64]

    def not_local(self) -> str | None:
        """Why the whole rule does not run locally (``None``: at least part of it does)."""
        if not self.enabled:
            return "disabled in the template"
        if self.schedule is not None:
            return "a schedule rule: schedules do not fire locally"
        if self.pattern is None:
            return "no event pattern"
        reasons = [target.not_local() for target in self.targets]
        if self.targets and all(reasons):
            return "; ".join(reason for reason in reasons if reason)
        return None


# --- Reading the template ------------------------------------------------------------------------


def _bus_name(value: Any) -> str:
    """An EventBusName (or bus ARN) -> the bus's name."""
    text = str(value or "default")
    return text.rsplit("/", 1)[1] if text.startswith("arn:") and "/" in text else text


def _pattern(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    data = json.loads(value) if isinstance(value, str) else value
    return data if isinstance(data, dict) else None


def _target(target_id: str, arn: str, owner: str | None, kind: str, props: Mapping[str, Any]) -> TargetSpec:
    """A target from the keys a SAM rule event and an ``AWS::Events::Rule`` target share (``Input``,
    ``InputPath``, ``InputTransformer``, ``RetryPolicy``, ``DeadLetterConfig``, ``RoleArn``); ``owner``
    is the template function or state machine it invokes (of type ``kind``), if any."""
    retry = props.get("RetryPolicy") or {}
    return TargetSpec(
        id=target_id,
        arn=arn,
        function=owner if kind == "AWS::Serverless::Function" else None,
        state_machine=owner if kind == "AWS::Serverless::StateMachine" else None,
        input=props.get("Input"),
        input_path=props.get("InputPath"),
        input_transformer=props.get("InputTransformer"),
        retry_attempts=int(retry.get("MaximumRetryAttempts", DEFAULT_RULE_RETRY_ATTEMPTS)),
        max_event_age_s=int(retry.get("MaximumEventAgeInSeconds", DEFAULT_RULE_EVENT_AGE_S)),
        dead_letter_arn=(props.get("DeadLetterConfig") or {}).get("Arn"),
        role_arn=props.get("RoleArn"),
    )


def template_rules(
    template: Mapping[str, Any],
    resolver: Resolver,
    *,
    active: Callable[[str], bool],
    arn_of: Callable[[str], str | None],
) -> list[RuleSpec]:
    """Every EventBridge rule the template declares, in template order.

    ``active(logical_id)``: whether a resource exists (its Condition holds); ``arn_of``: the local
    ARN of a resource (to recognise a function or state machine among an ``AWS::Events::Rule``'s
    targets).
    """
    resources: Mapping[str, Any] = template["Resources"]
    owners = {
        arn: (logical_id, resource["Type"])
        for logical_id, resource in resources.items()
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine")
        and active(logical_id)
        and (arn := arn_of(logical_id))
    }
    rules: list[RuleSpec] = []
    for logical_id, resource in resources.items():
        kind = resource["Type"]
        if not active(logical_id):
            continue
        if kind in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            events = (resource.get("Properties") or {}).get("Events") or {}
            for event_name, event in events.items():
                if event.get("Type") not in RULE_EVENT_TYPES:
                    continue
                props = resolver.resolve(event.get("Properties") or {})
                target_id = str((props.get("Target") or {}).get("Id") or f"{logical_id}Target")
                rules.append(
                    RuleSpec(
                        logical_id=f"{logical_id}{event_name}",
                        origin=f"{logical_id}.Events.{event_name}",
                        bus=_bus_name(props.get("EventBusName")),
                        pattern=_pattern(props.get("Pattern")),
                        targets=(_target(target_id, arn_of(logical_id) or logical_id, logical_id, kind, props),),
                        enabled=str(props.get("State", "ENABLED")).upper() == "ENABLED"
                        and props.get("Enabled", True) is not False,
                    )
                )
        elif kind == "AWS::Events::Rule":
            props = resolver.resolve(resource.get("Properties") or {})
            targets = []
            for target in props.get("Targets") or []:
                arn = str(target.get("Arn", ""))
                owner, owner_kind = owners.get(arn, (None, ""))
                targets.append(_target(str(target.get("Id", "")), arn, owner, owner_kind, target))
            rules.append(
                RuleSpec(
                    logical_id=logical_id,
                    origin=logical_id,
                    bus=_bus_name(props.get("EventBusName")),
                    pattern=_pattern(props.get("EventPattern")),
                    targets=tuple(targets),
                    schedule=props.get("ScheduleExpression"),
                    enabled=str(props.get("State", "ENABLED")).upper() == "ENABLED",
                )
            )
    return rules


# --- Input shaping ----------------------------------------------------------------------------------


def input_for(target: TargetSpec, event: dict[str, Any]) -> Any:
    """What the target receives for ``event``: the constant ``Input``, the part ``InputPath`` names,
    or the whole event (an ``InputTransformer`` was applied by moto already)."""
    if target.input is not None:
        return json.loads(target.input)
    if target.input_path:
        found = json_path(event, target.input_path)
        return None if found is MISSING else found  # nothing there: the function gets null
    return event


# --- Delivering ------------------------------------------------------------------------------------


@dataclass
class Relay:
    """A rule's function target and the queue moto delivers its events to."""

    rule: RuleSpec
    target: TargetSpec
    queue_url: str = ""


@dataclass
class RuleEngine:
    """Creates the template's rules in the emulator and delivers their events to the local functions."""

    rules: list[RuleSpec]
    invoker: AsyncInvoker  # runs each event on its function (the functions, their configs, the ARN names)
    relays: list[Relay] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._events = aws_client("events", self.invoker.endpoint)
        self._sqs = aws_client("sqs", self.invoker.endpoint)

    # -- setting up ------------------------------------------------------------------------------

    def install(self) -> None:
        """Create every rule that can run locally in the emulator (relay queues for function targets)."""
        for rule in self.rules:
            if rule.not_local() is not None:
                continue
            targets: list[dict[str, Any]] = []
            for target in rule.targets:
                if target.not_local() is not None:
                    continue
                if target.function is not None and target.function not in self.invoker.functions:
                    continue
                if target.function is not None:
                    relay = Relay(rule, target)
                    queue = f"{STACK_NAME}-{rule.logical_id}-{target.id}-relay"[:80]
                    relay.queue_url = self._sqs.create_queue(QueueName=queue)["QueueUrl"]
                    arn = self._sqs.get_queue_attributes(QueueUrl=relay.queue_url, AttributeNames=["QueueArn"])[
                        "Attributes"
                    ]["QueueArn"]
                    self.relays.append(relay)
                    entry: dict[str, Any] = {"Id": target.id[:64], "Arn": arn}
                else:
                    entry = {"Id": target.id[:64], "Arn": target.arn}
                    if target.role_arn:
                        entry["RoleArn"] = target.role_arn
                if target.input_transformer:
                    entry["InputTransformer"] = target.input_transformer
                elif target.function is not None:
                    # The whole event as EventBridge sends it. moto's own default builds the event by
                    # text substitution into a template, which drops "account" and rewrites any
                    # "<source>", "<id>", ... found inside the detail.
                    entry["InputTransformer"] = {"InputTemplate": WHOLE_EVENT}
                targets.append(entry)
            if not targets:
                continue
            self._events.put_rule(
                Name=rule.name, EventBusName=rule.bus, EventPattern=json.dumps(rule.pattern), State="ENABLED"
            )
            self._events.put_targets(Rule=rule.name, EventBusName=rule.bus, Targets=targets)

    def start(self) -> None:
        """Start polling the relay queues (after the functions are initialised)."""
        if not self.relays or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="eventbridge-rules", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop polling and drop what has not run yet (the stack is going away)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.invoker.close()

    # -- the rules, for people -------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """Every rule with what runs locally and what does not (state file, banner)."""
        relays = {(relay.rule.logical_id, relay.target.id): relay.queue_url for relay in self.relays}
        described = []
        for rule in self.rules:
            targets = []
            for target in rule.targets:
                reason = target.not_local() or rule.not_local()
                if reason is None and target.function is not None and target.function not in self.invoker.functions:
                    reason = f"{target.function} is not running in this stack"
                item: dict[str, Any] = {
                    "id": target.id,
                    "target": target.function or target.state_machine or self.invoker.names.get(target.arn, target.arn),
                    "local": reason is None,
                }
                if reason is not None:
                    item["not_local"] = reason
                if target.function is not None:
                    config = self.invoker.config(target.function)
                    item["relay_queue"] = relays.get((rule.logical_id, target.id))
                    item["retries"] = config.maximum_retry_attempts
                    on_failure = config.on_failure_arn or config.dead_letter_arn
                    item["on_failure"] = self.invoker.names.get(on_failure, on_failure) if on_failure else None
                if target.dead_letter_arn:
                    item["rule_dead_letter"] = self.invoker.names.get(target.dead_letter_arn, target.dead_letter_arn)
                targets.append(item)
            described.append(
                {
                    "name": rule.name,
                    "origin": rule.origin,
                    "bus": rule.bus,
                    "pattern": rule.pattern,
                    "schedule": rule.schedule,
                    "targets": targets,
                }
            )
        return described

    # -- polling and invoking --------------------------------------------------------------------

    def _poll(self) -> None:
        while not self._stop.is_set():
            busy = False
            for relay in self.relays:
                try:
                    busy |= self._drain(relay)
                except Exception as exc:  # the emulator is stopping, or a malformed message: keep going
                    if self._stop.is_set():
                        return
                    self.invoker.log(f"!! EventBridge {relay.rule.logical_id}: polling failed ({type(exc).__name__})")
            if not busy:
                self._stop.wait(POLL_IDLE_S)

    def _drain(self, relay: Relay) -> bool:
        response = self._sqs.receive_message(QueueUrl=relay.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = response.get("Messages") or []
        if not messages:
            return False
        self._sqs.delete_message_batch(
            QueueUrl=relay.queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(messages)],
        )
        for message in messages:
            event = json.loads(message["Body"])
            if isinstance(event, dict) and relay.target.input_transformer is None:
                # EventBridge's key order, without moto's own "ingestion-time".
                event = {key: event[key] for key in EVENT_KEYS if key in event}
            assert relay.target.function is not None
            self.invoker.submit(
                relay.target.function, input_for(relay.target, event), origin=f"EventBridge {relay.rule.logical_id}"
            )
        return True
