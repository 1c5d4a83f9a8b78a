"""The floor of an accept: the mint floor's imports plus ``cryptography``, 2 clients, 2 keyring
reads and the PEM parsed (at init), then per request the form read, one HS256 verification, one
conditional UpdateItem and one RS256 signature. Nothing else (see ``bench/floors``)."""

import base64
import json
import os
import secrets
import time
from urllib.parse import parse_qs

import boto3
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

_session = boto3.session.Session()
_secrets = _session.client("secretsmanager")
_dynamodb = _session.client("dynamodb")
_TABLE = os.environ["TABLE_NAME"]
_TICKET = json.loads(_secrets.get_secret_value(SecretId=os.environ["TICKET_KEYRING_SECRET_ID"])["SecretString"])[
    "keys"
][0]
_TICKET_SECRET = base64.urlsafe_b64decode(_TICKET["secret"] + "=" * (-len(_TICKET["secret"]) % 4))
_SESSION = json.loads(_secrets.get_secret_value(SecretId=os.environ["SESSION_KEYRING_SECRET_ID"])["SecretString"])[
    "keys"
][0]
_SESSION_KEY = load_pem_private_key(_SESSION["private_key_pem"].encode(), password=None)
_HEADERS = {"kid": _SESSION["kid"], "typ": "JWT"}
_LIFETIME = 604800


def lambda_handler(event, context):
    token = parse_qs(event["body"])["token"][0]
    claims = jwt.decode(token, _TICKET_SECRET, algorithms=["HS256"])
    now = int(time.time())
    session_id = "sess_" + secrets.token_hex(11)
    item = _dynamodb.update_item(
        TableName=_TABLE,
        Key={"pk": {"S": claims["sid"]}},
        UpdateExpression="SET #s = :accepted, session_id = :sess",
        ConditionExpression="#s = :pending AND expires_at > :now",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":accepted": {"S": "accepted"},
            ":pending": {"S": "pending"},
            ":now": {"N": str(now)},
            ":sess": {"S": session_id},
        },
        ReturnValues="ALL_NEW",
    )["Attributes"]
    session = jwt.encode(
        {"sub": item["user_id"]["S"], "sid": session_id, "iat": now, "nbf": now - 10, "exp": now + _LIFETIME,
         "iss": "https://links.example.com", "v": 2, "sts": "active"},
        _SESSION_KEY,
        algorithm="RS256",
        headers=_HEADERS,
    )  # fmt: skip
    return {
        "statusCode": 303,
        "headers": {"location": claims.get("rdr") or "/"},
        "cookies": [f"__session={session}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={_LIFETIME}"],
        "body": "",
    }
