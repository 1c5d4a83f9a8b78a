"""The one AWS account every local resource lives in: its region and account id (in every local
ARN, event and context), and the fake credentials moto takes (a local function can never reach real
AWS with them)."""

from __future__ import annotations

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
