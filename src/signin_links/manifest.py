"""The S3 side of batch minting: manifests of users in, results out.

A manifest is an S3 object named ``s3://bucket/key``:

* ``*.csv``: UTF-8 (a BOM is fine), a header row naming the columns ``user_id`` (required),
  ``redirect_url`` and ``metadata`` (a JSON object as text); empty cells mean "absent".
* ``*.jsonl`` / ``*.ndjson``: one JSON object per line (``{"user_id": ..., "redirect_url": ...,
  "metadata": {...}}``); blank lines are skipped.

Anything structurally wrong (unreadable object, wrong format, missing header, a row with the wrong
number of cells, a line that is not a JSON object, too large) rejects the whole manifest with
``form_param_value_invalid`` on ``manifest`` and nothing is minted. Problems with one user's values
are the batch's business (reported per user). S3 throttling and outages are
``service_unavailable`` (the invocation fails and is retried).

Results are JSONL objects in the results bucket; they carry accept URLs, so the bucket is private
and encrypted, and nothing here logs their content.

A Step Functions batch's chunk summaries are written by its Distributed Map (``ResultWriter``) under
``results/map-runs/<map run>/``: a ``manifest.json`` listing result files by status, each file a
JSON array (or JSON lines) of the chunks' outputs. :class:`MapRunResults` reads them back for the
batch summary; only keys under that prefix of the function's own results bucket are read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from signin_links.errors import SignInLinksError, param_invalid, unavailable
from signin_links.observability import logger

MANIFEST_COLUMNS = ("user_id", "redirect_url", "metadata")
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
MAX_KEY_LENGTH = 1024
# S3 answers that no retry will fix: the manifest is unreadable as named.
_PERMANENT = {"NoSuchKey", "NoSuchBucket", "AccessDenied", "403", "404", "InvalidObjectState", "InvalidBucketName"}


def _bad(why: str) -> SignInLinksError:
    return param_invalid("manifest", why)


@dataclass(frozen=True)
class ManifestLocation:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def format(self) -> str:
        lowered = self.key.lower()
        if lowered.endswith(CSV_SUFFIXES):
            return "csv"
        if lowered.endswith(JSONL_SUFFIXES):
            return "jsonl"
        raise _bad("must name a .csv or .jsonl (.ndjson) object.")


def parse_manifest_uri(value: object, allowed_bucket: str = "") -> ManifestLocation:
    """``s3://bucket/key`` -> location; ``allowed_bucket`` (if set) is the only bucket accepted."""
    if not isinstance(value, str):
        raise _bad("must be a string of the form s3://bucket/key.")
    if not value.startswith("s3://") or not value.isprintable():
        raise _bad("must be of the form s3://bucket/key.")
    bucket, _, key = value[len("s3://") :].partition("/")
    if not bucket or not key or len(key) > MAX_KEY_LENGTH:
        raise _bad("must be of the form s3://bucket/key.")
    if allowed_bucket and bucket != allowed_bucket:
        raise _bad(f"must be in the bucket {allowed_bucket}.")
    location = ManifestLocation(bucket, key)
    _ = location.format  # reject an unknown format before any read
    return location


def parse_csv(text: str) -> list[dict[str, Any]]:
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    users: list[dict[str, Any]] = []
    try:
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if header is None:
                header = [cell.strip().lower() for cell in row]
                unknown = [name for name in header if name not in MANIFEST_COLUMNS]
                if unknown:
                    raise _bad(f"has an unknown column {unknown[0][:64]!r} (allowed: {', '.join(MANIFEST_COLUMNS)}).")
                if "user_id" not in header or len(set(header)) != len(header):
                    raise _bad("needs a header row naming each column once, user_id among them.")
                continue
            if len(row) != len(header):
                raise _bad(f"row {rows.line_num} has {len(row)} cells where the header has {len(header)}.")
            users.append({name: (cell if cell.strip() else None) for name, cell in zip(header, row, strict=True)})
    except csv.Error as exc:
        raise _bad(f"is not valid CSV (line {rows.line_num}: {str(exc)[:100]}).") from None
    if header is None:
        raise _bad("is empty (a CSV manifest needs a header row).")
    return users


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    # Lines end at "\n" (JSON Lines), not at every boundary str.splitlines() knows: U+2028, U+2029
    # and U+0085 may stand raw inside a JSON string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            raise _bad(f"line {number} is not valid JSON.") from None
        if not isinstance(value, dict):
            raise _bad(f"line {number} is not a JSON object.")
        users.append(value)
    return users


def read_object(client: Any, bucket: str, key: str, max_bytes: int, *, param: str, what: str = "") -> bytes:
    """An S3 object's bytes, at most ``max_bytes``: ``form_param_value_invalid`` on ``param`` (``what``
    the message names) when it is unreadable as named or too large, ``service_unavailable`` when S3
    is (a retry may work)."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        size = int(response.get("ContentLength") or 0)
        if size > max_bytes:
            raise param_invalid(param, f"{what}is {size} bytes; at most {max_bytes} are accepted in one invocation.")
        raw: bytes = response["Body"].read(max_bytes + 1)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _PERMANENT:
            raise param_invalid(param, f"{what}could not be read ({code}).") from None
        logger.warning("S3 GetObject failed", extra={"aws_error": code})
        raise unavailable("S3") from None
    except BotoCoreError as exc:
        logger.warning("S3 unreachable", extra={"error": type(exc).__name__})
        raise unavailable("S3") from None
    if len(raw) > max_bytes:
        raise param_invalid(param, f"{what}is larger than {max_bytes} bytes.")
    return raw


class ManifestReader:
    def __init__(self, client: Any) -> None:
        self._client = client

    def read(self, location: ManifestLocation, *, max_bytes: int) -> list[dict[str, Any]]:
        """The manifest's user objects, in file order (nothing validated beyond structure)."""
        raw = read_object(self._client, location.bucket, location.key, max_bytes, param="manifest")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _bad("is not UTF-8 text.") from None
        return parse_csv(text) if location.format == "csv" else parse_jsonl(text)


MAP_RUNS_PREFIX = "results/map-runs/"  # the state machine's ResultWriter Prefix, with its "/"
MAP_RUN_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class MapRun:
    """What a Distributed Map wrote: the outputs of its succeeded children, and how many result
    files list failed or pending ones (none when the Map succeeded, which it must to be summarised)."""

    outputs: list[Any]
    unfinished_files: int


def _entry_output(entry: Any) -> Any:
    """A child's output: as is (ResultWriter's COMPACT), or its ``Output`` (NONE: JSON text)."""
    if isinstance(entry, dict) and "Output" in entry and "ExecutionArn" in entry:
        output = entry["Output"]
        if isinstance(output, str):
            try:
                return json.loads(output)
            except ValueError:
                return None
        return output
    return entry


class MapRunResults:
    """Reads a Distributed Map run's results (``ResultWriterDetails``: its manifest's bucket and key)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def _get(self, key: str, max_bytes: int) -> bytes:
        return read_object(self._client, self.bucket, key, max_bytes, param="map_results", what="a result object ")

    def read(self, bucket: str, key: str, *, max_bytes: int) -> MapRun:
        """The chunk outputs listed by the run's manifest; ``form_param_value_invalid`` on
        ``map_results`` for a location outside the results bucket's map runs or a malformed file."""
        directory = key[: -len(MAP_RUN_MANIFEST)]
        if bucket != self.bucket or not key.startswith(MAP_RUNS_PREFIX) or not key.endswith("/" + MAP_RUN_MANIFEST):
            raise param_invalid(
                "map_results", f"must name a {MAP_RUN_MANIFEST} under s3://{self.bucket}/{MAP_RUNS_PREFIX}."
            )
        manifest = _json(self._get(key, max_bytes))
        files = manifest.get("ResultFiles") if isinstance(manifest, dict) else None
        if not isinstance(files, dict):
            raise param_invalid("map_results", "the map run's manifest lists no ResultFiles.")
        outputs: list[Any] = []
        unfinished = 0
        for status, listed in files.items():
            for item in listed if isinstance(listed, list) else [listed]:
                result_key = item.get("Key") if isinstance(item, dict) else None
                if not isinstance(result_key, str) or not result_key.startswith(directory) or ".." in result_key:
                    raise param_invalid("map_results", "the map run's manifest lists a file outside its run.")
                if status != "SUCCEEDED":
                    unfinished += 1
                    continue
                outputs.extend(_entry_output(entry) for entry in _entries(self._get(result_key, max_bytes)))
        return MapRun(outputs=outputs, unfinished_files=unfinished)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise param_invalid("map_results", "a result object is not JSON.") from None


def _entries(raw: bytes) -> list[Any]:
    """A result file: a JSON array (OutputType JSON) or JSON lines (JSONL)."""
    text = raw.decode("utf-8", "replace").strip()
    if text.startswith("["):
        value = _json(raw)
        return value if isinstance(value, list) else [value]
    return [_json(line.encode("utf-8")) for line in text.splitlines() if line.strip()]


def results_key(batch_id: str, chunk: int) -> str:
    """``results/<batch_id>.jsonl`` for a whole batch, ``results/<batch_id>/chunk-<n>.jsonl`` for a
    Step Functions chunk (the batch id is percent-encoded: any character is safe in a key)."""
    name = quote(batch_id, safe="-_.~")
    return f"results/{name}.jsonl" if chunk < 0 else f"results/{name}/chunk-{chunk:09d}.jsonl"


class ResultsWriter:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def write(self, key: str, lines: Iterable[dict[str, Any]]) -> str:
        """Write one JSON object per line; returns the object's ``s3://`` URI."""
        body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode("utf-8")
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/x-ndjson",
                ServerSideEncryption="AES256",
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("S3 PutObject of batch results failed", extra={"error": type(exc).__name__})
            raise unavailable("S3") from None
        return f"s3://{self.bucket}/{key}"
