"""The local stack's HTTP server: reads each request strictly (framing, body size), hands it to the
stack as an :class:`~local.apigw.HttpRequest`, and writes the answer back.

The request log has method, route key, status and milliseconds: never a path, query string, body
or header, which could carry a token or a key.
"""

from __future__ import annotations

import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from local.apigw import MAX_BODY_BYTES, HttpRequest, HttpResponse, too_large


class Api(Protocol):
    """What the server serves: the local stack (``LocalStack``)."""

    url: str

    def call(self, request: HttpRequest, domain_name: str) -> tuple[HttpResponse, str]: ...


DIGITS = re.compile(rb"[0-9]+")
HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")


def _size(raw: bytes, digits: re.Pattern[bytes], base: int) -> int:
    """A Content-Length or chunk size, strictly; ``ValueError`` for anything but digits."""
    if not digits.fullmatch(raw) or len(raw) > 32:
        raise ValueError("malformed size")
    return int(raw, base)


class ApiRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, a keep-alive client waits for the
    # peer's delayed ACK (~40 ms) on every request after the first.
    disable_nagle_algorithm = True
    server: ApiServer
    server_version = "signin-links-local"
    sys_version = ""

    def do_GET(self) -> None:
        self.serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, QUERY, ...) reaches the router too, which answers 404 to a route
        it does not know, as API Gateway does; http.server alone would answer 501 with an HTML page."""
        if name.startswith("do_"):
            return self.do_GET
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default line holds the request target, whose query string can carry a token."""

    def read_body(self) -> bytes | None:
        """The request body; ``None`` if it is over the limit (the connection is then closed).

        Sizes are read strictly (digits only; hex digits for a chunk): ``int`` alone would take
        ``-5``, ``+5``, ``1_0`` or ``0x10``, and a negative size read the socket to its end (a hung
        thread). Anything else raises ``ValueError``: a 400."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size = _size(self.rfile.readline().split(b";", 1)[0].strip() or b"0", HEX_DIGITS, 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = _size((self.headers.get("Content-Length") or "0").strip().encode("latin-1"), DIGITS, 10)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def serve(self) -> None:
        started = time.perf_counter()
        route_key = f"{self.command} (no route)"
        try:
            body = self.read_body()
        except ValueError:
            body, response = (
                b"",
                HttpResponse(400, [("Content-Type", "application/json")], b'{"message":"Bad Request"}'),
            )
            self.close_connection = True
        else:
            response = too_large() if body is None else HttpResponse(0, [])
        if response.status == 0:
            request = HttpRequest(
                method=self.command,
                target=self.path,
                headers=list(self.headers.items()),
                body=body or b"",
                source_ip=self.client_address[0],
                protocol=self.request_version,
            )
            domain_name = self.headers.get("Host") or urlsplit(self.server.stack.url).netloc
            response, route_key = self.server.stack.call(request, domain_name)
        self.send_response_only(response.status)
        self.send_header("Date", self.date_time_string())
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)
        elapsed = (time.perf_counter() - started) * 1000
        print(f"{route_key} -> {response.status} ({elapsed:.0f} ms)", file=sys.stderr, flush=True)


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 resets a burst of concurrent clients
    stack: Api


def display_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"
