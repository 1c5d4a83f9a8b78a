"""The floor of an accept: boto3, PyJWT and ``cryptography``, 2 clients, 2 keyring reads, the
ticket's public key and the session key's PEM parsed (at init), then per request the form read, one
EdDSA verification (public key only), the refresh token's proof (one HMAC-SHA256 with a key derived
at init), one TransactWriteItems (the token's conditional update and the session's put) and one
RS256 signature. Nothing else (see ``bench/floors``)."""

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from urllib.parse import parse_qs

import boto3
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

_session = boto3.session.Session()
_secrets = _session.client("secretsmanager")
_dynamodb = _session.client("dynamodb")
_TABLE = os.environ["TABLE_NAME"]
_TICKET = json.loads(
    _secrets.get_secret_value(SecretId=os.environ["TICKET_VERIFICATION_KEYRING_SECRET_ID"])["SecretString"]
)["keys"][0]
_TICKET_KEY = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(_TICKET["public_key"] + "="))
_SESSION = json.loads(_secrets.get_secret_value(SecretId=os.environ["SESSION_KEYRING_SECRET_ID"])["SecretString"])[
    "keys"
][0]
_SESSION_KEY = load_pem_private_key(_SESSION["private_key_pem"].encode(), password=None)
_HEADERS = {"kid": _SESSION["kid"], "typ": "JWT"}
_PROOF_KEY = hashlib.sha256(_SESSION["private_key_pem"].encode()).digest()  # the derivation, once
_LIFETIME = 604800  # the session
_TOKEN_LIFETIME = 60  # its token


def lambda_handler(event, context):
    token = parse_qs(event["body"])["token"][0]
    claims = jwt.decode(token, _TICKET_KEY, algorithms=["EdDSA"])
    now = int(time.time())
    session_id = "sess_" + secrets.token_hex(11)
    proof = hmac.new(_PROOF_KEY, f"{session_id}.0".encode(), hashlib.sha256).digest()
    refresh = base64.urlsafe_b64encode(proof).rstrip(b"=").decode()
    user_id = claims["uid"]
    _dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": _TABLE,
                    "Key": {"pk": {"S": claims["sid"]}},
                    "UpdateExpression": "SET #s = :accepted, session_id = :sess",
                    "ConditionExpression": "#s = :pending AND expires_at > :now",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {
                        ":accepted": {"S": "accepted"},
                        ":pending": {"S": "pending"},
                        ":now": {"N": str(now)},
                        ":sess": {"S": session_id},
                    },
                }
            },
            {
                "Put": {
                    "TableName": _TABLE,
                    "Item": {
                        "pk": {"S": session_id},
                        "user_id": {"S": user_id},
                        "status": {"S": "active"},
                        "refresh_generation": {"N": "0"},
                        "expire_at": {"N": str((now + _LIFETIME) * 1000)},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
    )
    session = jwt.encode(
        {"sub": user_id, "sid": session_id, "iat": now, "nbf": now - 10, "exp": now + _TOKEN_LIFETIME,
         "iss": "https://links.example.com", "v": 2, "sts": "active"},
        _SESSION_KEY,
        algorithm="RS256",
        headers=_HEADERS,
    )  # fmt: skip
    return {
        "statusCode": 303,
        "headers": {"location": claims.get("rdr") or "/"},
        "cookies": [
            f"__session={session}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={_LIFETIME}",
            f"__Host-refresh={session_id}.0.{refresh}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={_LIFETIME}",
        ],
        "body": "",
    }
