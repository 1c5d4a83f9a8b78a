"""Create, in the emulator, the resources that ``template.yaml`` declares, with local names.

One creator per CloudFormation type, registered with :func:`creator`; a type without one is
skipped quietly and gets a placeholder name (so a ``Ref`` to it still resolves). To support a new
type, add a function::

    @creator("AWS::SNS::Topic")
    def _topic(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
        arn = ctx.client("sns").create_topic(Name=props.get("TopicName") or ctx.name(logical_id))["TopicArn"]
        return Created(ref=arn, attrs={"TopicArn": arn, "TopicName": arn.rsplit(":", 1)[1]})

Resources are created in dependency order (a queue before the queue whose redrive policy names
it) and their properties are resolved with :class:`local.intrinsics.Resolver` first.

Secrets get local values (``local.secret_values``); a keyring secret with no keys is seeded with a
fresh key by :meth:`LocalResources.seed_keyrings`, once the functions' environment is set.

Nothing here imports ``signin_links`` at module level: its Powertools objects read ``POWERTOOLS_*``
when first imported, which must happen after the functions' environment is applied.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.account import ACCOUNT_ID, REGION
from local.emulator import aws_client
from local.intrinsics import Resolver, creation_order, parameter_values
from local.secret_values import empty_keyring_kind, secret_value
from local.template import resources as declared

DEFAULT_SECRET_KEY = "sk_test_local_signin_links_0001"
STACK_NAME = "signin-links-local"


@dataclass(frozen=True)
class Created:
    """What ``Ref`` and ``Fn::GetAtt`` give for one resource, locally."""

    ref: str
    attrs: dict[str, str] = field(default_factory=dict)
    created: bool = True  # False: a placeholder for a type the local stack does not create


@dataclass
class Context:
    endpoint: str
    resolver: Resolver
    secret_key: str = DEFAULT_SECRET_KEY
    stack_name: str = STACK_NAME
    region: str = REGION
    api_url: str = ""
    empty_keyrings: dict[str, str] = field(default_factory=dict)  # secret ARN -> kind, seeded later
    pipes: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id -> name, arn, properties
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = aws_client(service, self.endpoint, self.region)
        return self._clients[service]

    def name(self, logical_id: str) -> str:
        """CloudFormation's naming habit for resources without an explicit name: stack-LogicalId."""
        return f"{self.stack_name}-{logical_id}"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{resource}"


Creator = Callable[[Context, str, dict[str, Any]], Created]
CREATORS: dict[str, Creator] = {}


def creator(kind: str) -> Callable[[Creator], Creator]:
    def register(function: Creator) -> Creator:
        CREATORS[kind] = function
        return function

    return register


@dataclass
class LocalResources:
    """Every resource of the template, by logical id, with its local ``Ref`` and attributes."""

    kinds: dict[str, str] = field(default_factory=dict)  # logical id -> CloudFormation type
    created: dict[str, Created] = field(default_factory=dict)
    empty_keyrings: dict[str, str] = field(default_factory=dict)  # secret ARN -> keyring kind
    pipes: dict[str, dict[str, Any]] = field(default_factory=dict)  # run by local.pipes (LocalStack.start_pipes)

    def seed_keyrings(self, endpoint: str, verification_keyring: str = "") -> None:
        """Put a first key into every keyring secret created empty, as the stack's rotation on
        creation does: an Ed25519 signing keyring's public half goes to ``verification_keyring``
        (the secret the rotation function publishes to, its ``TICKET_VERIFICATION_KEYRING_SECRET_ID``).

        Separate from creation because it imports ``signin_links`` (whose Powertools Logger and
        Metrics read ``POWERTOOLS_*`` when first imported): call it once the functions'
        environment is in place.
        """
        from signin_links.keyring import ED25519, new_keyring_json, new_ticket_keyrings_json

        client = aws_client("secretsmanager", endpoint)
        for arn, kind in self.empty_keyrings.items():
            if kind != ED25519:
                client.put_secret_value(SecretId=arn, SecretString=new_keyring_json(kind))
                continue
            if not verification_keyring:
                raise ValueError("an Ed25519 signing keyring needs a verification keyring to publish to")
            signing, public = new_ticket_keyrings_json()
            client.put_secret_value(SecretId=arn, SecretString=signing)
            client.put_secret_value(SecretId=verification_keyring, SecretString=public)
        self.empty_keyrings.clear()

    def ref(self, logical_id: str) -> str | None:
        item = self.created.get(logical_id)
        return item.ref if item else None

    def att(self, logical_id: str, attr: str) -> str | None:
        item = self.created.get(logical_id)
        return item.attrs.get(attr) if item else None

    def of_kind(self, kind: str) -> dict[str, str]:
        """Logical id -> Ref of every created resource of ``kind``."""
        return {
            logical_id: item.ref
            for logical_id, item in self.created.items()
            if self.kinds[logical_id] == kind and item.created
        }

    def to_json(self) -> dict[str, Any]:
        return {
            logical_id: {"type": self.kinds[logical_id], "ref": item.ref, "attrs": item.attrs, "created": item.created}
            for logical_id, item in self.created.items()
        }


def create_resources(
    template: dict[str, Any],
    endpoint: str,
    *,
    parameters: dict[str, str] | None = None,
    secret_key: str = DEFAULT_SECRET_KEY,
    stack_name: str = STACK_NAME,
    api_url: str = "",
) -> tuple[LocalResources, Resolver]:
    """Create the template's resources on the emulator at ``endpoint``.

    Returns the resources and a resolver bound to them (for the functions' environments).
    """
    found = LocalResources()
    resolver = Resolver(
        template,
        parameter_values(template, parameters),
        ref_of=found.ref,
        att_of=found.att,
        stack_name=stack_name,
    )
    ctx = Context(endpoint=endpoint, resolver=resolver, secret_key=secret_key, stack_name=stack_name, api_url=api_url)
    for logical_id in creation_order(template):
        resource = template["Resources"][logical_id]
        kind = resource["Type"]
        found.kinds[logical_id] = kind
        condition = resource.get("Condition")
        if condition and not resolver.condition(condition):
            continue
        make = CREATORS.get(kind)
        if make is None:
            found.created[logical_id] = placeholder(ctx, logical_id, kind)
            continue
        props = resolver.resolve(resource.get("Properties") or {})
        found.created[logical_id] = make(ctx, logical_id, props)
    found.empty_keyrings.update(ctx.empty_keyrings)
    found.pipes.update(ctx.pipes)
    return found, resolver


def placeholder(ctx: Context, logical_id: str, kind: str) -> Created:
    """A name for a resource the local stack does not create, so references to it still resolve."""
    name = ctx.name(logical_id)
    service = kind.split("::")[1].lower() if kind.count("::") >= 2 else "local"
    arn = ctx.arn(service, name)
    return Created(ref=name, attrs={"Arn": arn, "Name": name}, created=False)


_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput", "StreamSpecification")
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")


def create_table(dynamodb: Any, table_name: str, props: dict[str, Any]) -> None:
    """Create one table from its (resolved) CloudFormation properties on ``dynamodb`` (a boto3 client)."""
    kwargs: dict[str, Any] = {"TableName": table_name, "BillingMode": "PAY_PER_REQUEST"}
    kwargs.update({key: props[key] for key in _TABLE_KEYS if props.get(key)})
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if props.get(kind):
            kwargs[kind] = [{key: index[key] for key in _INDEX_KEYS if key in index} for index in props[kind]]
    if "StreamSpecification" in kwargs:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **kwargs["StreamSpecification"]}
    dynamodb.create_table(**kwargs)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )


def create_tables(dynamodb: Any, names: dict[str, str] | None = None) -> dict[str, str]:
    """Create every ``AWS::DynamoDB::Table`` of the template on ``dynamodb`` (a boto3 client).

    Returns logical id -> table name (``names`` may fix a name per logical id).
    """
    created = {}
    for logical_id, props in declared("AWS::DynamoDB::Table").items():
        table_name = (names or {}).get(logical_id) or props.get("TableName") or logical_id
        if not isinstance(table_name, str):
            table_name = logical_id
        create_table(dynamodb, table_name, props)
        created[logical_id] = table_name
    return created


# --- Creators --------------------------------------------------------------------------------------------


@creator("AWS::DynamoDB::Table")
def _table(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("TableName") or ctx.name(logical_id))
    create_table(ctx.client("dynamodb"), name, props)
    description = ctx.client("dynamodb").describe_table(TableName=name)["Table"]
    attrs = {"Arn": description["TableArn"]}
    if description.get("LatestStreamArn"):
        attrs["StreamArn"] = description["LatestStreamArn"]
    return Created(ref=name, attrs=attrs)


@creator("AWS::SecretsManager::Secret")
def _secret(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    kwargs: dict[str, Any] = {"Name": str(props.get("Name") or ctx.name(logical_id))}
    if props.get("Description"):
        kwargs["Description"] = str(props["Description"])
    value = secret_value(props, ctx.secret_key)
    if value is not None:
        kwargs["SecretString"] = value
    arn = ctx.client("secretsmanager").create_secret(**kwargs)["ARN"]
    kind = empty_keyring_kind(value or "")
    if kind:
        ctx.empty_keyrings[arn] = kind
    return Created(ref=arn, attrs={"Id": arn})


@creator("AWS::Events::EventBus")
def _event_bus(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("Name") or ctx.name(logical_id))
    arn = ctx.client("events").create_event_bus(Name=name)["EventBusArn"]
    return Created(ref=name, attrs={"Arn": arn, "Name": name})


@creator("AWS::S3::Bucket")
def _bucket(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("BucketName") or ctx.name(logical_id).lower())[:63]
    ctx.client("s3").create_bucket(Bucket=name)
    return Created(
        ref=name,
        attrs={
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{ctx.region}.amazonaws.com",
        },
    )


_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


@creator("AWS::SQS::Queue")
def _queue(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    fifo = str(props.get("FifoQueue", "")).lower() == "true"
    name = str(props.get("QueueName") or ctx.name(logical_id) + (".fifo" if fifo else ""))
    attributes = {}
    for key in _QUEUE_ATTRIBUTES:
        if key in props:
            value = props[key]
            if isinstance(value, bool):
                attributes[key] = "true" if value else "false"
            else:
                attributes[key] = json.dumps(value) if isinstance(value, dict) else str(value)
    if fifo:
        attributes["FifoQueue"] = "true"
    sqs = ctx.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Created(ref=url, attrs={"Arn": arn, "QueueName": name, "QueueUrl": url})


@creator("AWS::SSM::Parameter")
def _parameter(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    """A String parameter (the stack's AcceptBaseUrlParameter, which mint_link reads)."""
    name = str(props.get("Name") or ctx.name(logical_id))
    ctx.client("ssm").put_parameter(Name=name, Value=str(props["Value"]), Type=str(props.get("Type") or "String"))
    return Created(ref=name, attrs={"Type": str(props.get("Type") or "String"), "Value": str(props["Value"])})


@creator("AWS::Serverless::Function")
def _function(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    """Not created in the emulator (the local stack runs it in-process); names for references."""
    name = str(props.get("FunctionName") or ctx.name(logical_id))
    return Created(ref=name, attrs={"Arn": ctx.arn("lambda", f"function:{name}")}, created=False)


@creator("AWS::Pipes::Pipe")
def _pipe(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    """Not created in the emulator (moto has no Pipes): ``local.pipes`` runs it, from these properties."""
    name = str(props.get("Name") or ctx.name(logical_id))
    arn = ctx.arn("pipes", f"pipe/{name}")
    ctx.pipes[logical_id] = {"name": name, "arn": arn, "properties": props}
    return Created(ref=name, attrs={"Arn": arn, "CurrentState": "RUNNING"}, created=False)


@creator("AWS::Lambda::EventSourceMapping")
def _event_source_mapping(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    """Not created in the emulator (moto cannot invoke functions): ``local.event_sources`` runs it."""
    mapping_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ctx.stack_name}/{logical_id}"))
    return Created(
        ref=mapping_id,
        attrs={"EventSourceMappingArn": ctx.arn("lambda", f"event-source-mapping:{mapping_id}")},
        created=False,
    )


@creator("AWS::Serverless::HttpApi")
def _http_api(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    return Created(ref="local", attrs={"ApiEndpoint": ctx.api_url, "ApiId": "local"}, created=False)


@creator("AWS::SES::ConfigurationSet")
def _configuration_set(ctx: Context, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props.get("Name") or ctx.name(logical_id))
    ctx.client("sesv2").create_configuration_set(ConfigurationSetName=name)
    return Created(ref=name, attrs={"Arn": ctx.arn("ses", f"configuration-set/{name}")})
