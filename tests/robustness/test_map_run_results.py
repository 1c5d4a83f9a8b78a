"""The summary step of a distributed batch: its event and the objects it reads.

The event is the state machine's (``{"batch_id", "map_results": {"Bucket", "Key"}}``) and the
objects are the Distributed Map's ResultWriter output in the results bucket, but both are inputs:
any shape must end as a summary or as ``BatchRejected`` / ``form_param_value_invalid`` (the step is
not retried), never another exception. Only keys under ``results/map-runs/`` of the function's own
results bucket are ever read.
"""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from signin_links.batch.request import BatchRejected, FinalizeRequest, check_chunk_summaries, parse_invocation
from signin_links.config import parse_settings
from signin_links.errors import ErrorCode, SignInLinksError
from signin_links.manifest import MAP_RUNS_PREFIX, MapRunResults

SETTINGS = parse_settings({"TABLE_NAME": "t", "RESULTS_BUCKET": "results"})
MAX_BYTES = 64 * 1024

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=16,
)
keys = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["manifest.json", "SUCCEEDED_0.json", "../x/SUCCEEDED_0.json", "/manifest.json"]).map(
        lambda tail: MAP_RUNS_PREFIX + "run/" + tail
    ),
    st.text(max_size=20).map(lambda run: f"{MAP_RUNS_PREFIX}{run}/manifest.json"),
)
locations = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"Bucket": st.sampled_from(["results", "other", ""]) | json_values, "Key": keys | json_values}
    ),
)


@settings(deadline=None)
@given(batch_id=json_values | st.text(max_size=140), where=locations, both=st.booleans(), extra=st.booleans())
def test_any_summary_event_is_a_finalize_request_or_rejected(
    batch_id: Any, where: Any, both: bool, extra: bool
) -> None:
    event: dict[str, Any] = {"batch_id": batch_id, "map_results": where}
    if both:
        event["chunks"] = []
    if extra:
        event["Payload"] = where  # an unknown field, as a wrong ResultSelector would pass
    try:
        request = parse_invocation(event, SETTINGS)
    except BatchRejected:
        return
    assert isinstance(request, FinalizeRequest)
    assert request.map_results is not None
    assert all(isinstance(part, str) and part for part in request.map_results)


class FakeS3:
    """get_object answers from a dict of key -> bytes; a missing key is S3's NoSuchKey."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.read: list[tuple[str, str]] = []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # boto3's argument names
        from botocore.exceptions import ClientError

        self.read.append((Bucket, Key))
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "x"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


files = st.one_of(
    json_values.map(encoded),
    st.binary(max_size=300),
    st.lists(json_values, max_size=5).map(encoded),
    st.lists(json_values, max_size=5).map(lambda values: "\n".join(json.dumps(v) for v in values).encode()),
    st.lists(
        st.fixed_dictionaries({"status": st.text(max_size=10), "counts": json_values}),
        max_size=4,
    ).map(encoded),
)


@st.composite
def runs(draw: st.DrawFn) -> tuple[dict[str, bytes], str]:
    """A map run's objects: a manifest (well formed or not) listing files, some of them missing."""
    directory = f"{MAP_RUNS_PREFIX}run/"
    names = draw(st.lists(st.sampled_from(["SUCCEEDED_0.json", "SUCCEEDED_1.json", "FAILED_0.json"]), max_size=3))
    objects = {directory + name: draw(files) for name in names if draw(st.booleans())}
    strays = draw(st.lists(st.fixed_dictionaries({"Key": keys}), max_size=2))
    listed = [{"Key": directory + name} for name in names] + strays
    manifest: Any = {"ResultFiles": {draw(st.sampled_from(["SUCCEEDED", "FAILED", "PENDING", "x"])): listed}}
    objects[directory + "manifest.json"] = draw(st.one_of(st.just(encoded(manifest)), files))
    return objects, directory + "manifest.json"


@settings(deadline=None)
@given(run=runs(), bucket=st.sampled_from(["results", "other"]))
def test_any_map_run_is_read_back_or_refused_and_nothing_outside_it_is_read(
    run: tuple[dict[str, bytes], str], bucket: str
) -> None:
    objects, key = run
    s3 = FakeS3(objects)
    try:
        read = MapRunResults(s3, "results").read(bucket, key, max_bytes=MAX_BYTES)
        check_chunk_summaries(read.outputs, "map_results")
    except SignInLinksError as error:
        assert error.code is ErrorCode.FORM_PARAM_VALUE_INVALID, error
        assert error.param == "map_results"
    for read_bucket, read_key in s3.read:
        assert read_bucket == "results"
        assert read_key.startswith(key.removesuffix("manifest.json"))
        assert ".." not in read_key
