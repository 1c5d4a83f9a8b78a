"""The floor of a mint: boto3 + cryptography's Ed25519 (nothing else of it, and no PyJWT), 2 clients,
2 secret reads and the signing key parsed (at init), then per request one Bearer check, one compact
JWS signed with Ed25519 (RFC 8037) and one conditional PutItem. Nothing else (see ``bench/floors``)."""

import base64
import hmac
import json
import os
import secrets
import time

import boto3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_session = boto3.session.Session()
_secrets = _session.client("secretsmanager")
_dynamodb = _session.client("dynamodb")
_TABLE = os.environ["TABLE_NAME"]
_API_KEY = json.loads(_secrets.get_secret_value(SecretId=os.environ["API_KEYS_SECRET_ID"])["SecretString"])[
    "secret_key"
].encode()
_KEY = json.loads(_secrets.get_secret_value(SecretId=os.environ["TICKET_SIGNING_KEYRING_SECRET_ID"])["SecretString"])[
    "keys"
][0]
_SIGNER = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(_KEY["private_key"] + "="))
_LIFETIME = 2592000


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_HEADER = _b64(json.dumps({"alg": "EdDSA", "kid": _KEY["kid"], "typ": "JWT"}, separators=(",", ":")).encode())


def lambda_handler(event, context):
    presented = event["headers"].get("authorization", "").removeprefix("Bearer ").encode()
    if not hmac.compare_digest(presented, _API_KEY):
        return {"statusCode": 401, "body": "{}"}
    request = json.loads(event["body"])
    now = int(time.time())
    sid = "sit_" + secrets.token_hex(11)
    claims = {"eis": _LIFETIME, "exp": now + _LIFETIME, "iat": now, "sid": sid, "st": "sign_in_token"}
    claims["uid"] = request["user_id"]
    if request.get("redirect_url"):
        claims["rdr"] = request["redirect_url"]
    signing_input = f"{_HEADER}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    token = f"{signing_input}.{_b64(_SIGNER.sign(signing_input.encode()))}"
    _dynamodb.put_item(
        TableName=_TABLE,
        Item={
            "pk": {"S": sid},
            "user_id": {"S": request["user_id"]},
            "status": {"S": "pending"},
            "expires_at": {"N": str(now + _LIFETIME)},
        },
        ConditionExpression="attribute_not_exists(pk)",
    )
    body = {"object": "sign_in_token", "id": sid, "status": "pending", "user_id": request["user_id"], "token": token}
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
