"""moto's server on loopback, with requests serialised so conditional writes are atomic.

moto's DynamoDB evaluates a ``ConditionExpression`` and then writes, in plain Python with no lock:
two requests served by two threads can both pass the check. Real DynamoDB applies a conditional
write to an item atomically, and this project's single-use guarantee rests on that. So the WSGI
app is wrapped in :class:`SerialisedApp`: one request at a time, each one complete (response body
included) before the next starts. Throughput is not the point of an emulator; correctness is.

moto is changed in a few places before it serves (``local.moto_patches``: an all-or-nothing
``TransactWriteItems``, caches of work it redid per request) and SES v2 gets ``GetAccount`` and
SES's sending throttle (``local.ses_quota``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from local.account import FAKE_CREDENTIALS, REGION
from local.moto_patches import (
    atomic_transactions,
    cache_action_names,
    cache_jsonpath_parser,
    cache_moto_modules,
    fast_sqs_clock,
    lean_sqs_sends,
)
from local.ses_quota import ses_quota

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class SerialisedApp:
    """A WSGI app that lets one request at a time through ``app`` (the body is read out under the lock)."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        with self.lock:
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]


class MotoServer:
    """moto's server (every service) on ``host`` and a free port, in a daemon thread.

    Use as a context manager, or ``start()`` / ``stop()``. ``endpoint`` is what boto3 takes as
    ``endpoint_url`` (and ``AWS_ENDPOINT_URL``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()  # held while a request is served (SerialisedApp)

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the moto server is not running")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> MotoServer:
        """Serve an empty emulator. moto's backends are global to the process, so a server started
        after another in the same process (tests, ``make invoke --fresh``) would otherwise find the
        first one's tables and queues; two servers at once in one process are not supported."""
        from moto.moto_api._internal.models import moto_api_backend
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        moto_api_backend.reset()

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request lines from moto
        cache_jsonpath_parser()
        cache_moto_modules()
        fast_sqs_clock()
        lean_sqs_sends()
        atomic_transactions()
        ses_quota()
        cache_action_names()  # after ses_quota(), which adds an action
        app = SerialisedApp(DomainDispatcherApplication(create_backend_app))
        app.lock = self.lock  # whoever changes moto's backend directly takes it too (local.rotation)
        self._server = make_server(self.host, self.port, app, threaded=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def aws_client(service: str, endpoint: str, region: str = REGION) -> Any:
    """A boto3 client bound to the emulator at ``endpoint``, with fake credentials."""
    import boto3

    return boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
