"""An HTTPS front for the local stack, so a browser test can put the service on an app's subdomain.

The local stack speaks plain HTTP on 127.0.0.1. Clerk's subdomain setup needs more: clerk-js calls
``https://<the publishable key's host>/v1/...``, the app and the service are two hosts of one site
(``app.example.test`` and ``clerk.example.test``: same site, so ``SameSite=Lax`` cookies travel with
clerk-js's credentialed CORS requests), and ``__Host-`` cookies need an https origin. This front
listens on 127.0.0.1 with a certificate for both names (made here, self-signed: the browser is told
to ignore certificate errors and to resolve ``*.example.test`` to 127.0.0.1), forwards every request
for the service's host to the local stack as it came (Host included), and serves the app's page and
clerk-js itself for the app's host.
"""

from __future__ import annotations

import datetime
import http.client
import ssl
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

APP_HOST = "app.example.test"
SERVICE_HOST = "clerk.example.test"
# What Chromium needs to reach the front by those names, over TLS it cannot verify.
CHROMIUM_ARGS = ["--host-resolver-rules=MAP *.example.test 127.0.0.1", "--ignore-certificate-errors"]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for both hosts (never leaves the test's temporary directory)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVICE_HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(APP_HOST), x509.DNSName(SERVICE_HOST)]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "front.crt", directory / "front.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    upstream: tuple[str, int] = ("127.0.0.1", 0)  # the local stack, once it runs
    app_html = ""
    app_files = Path()


class FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FrontServer

    def handle_one(self) -> None:
        host = (self.headers.get("Host") or "").split(":", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if host == APP_HOST:
            self.serve_app()
        else:
            self.forward(body)

    do_GET = do_POST = do_OPTIONS = do_HEAD = do_PUT = do_PATCH = do_DELETE = handle_one

    def serve_app(self) -> None:
        path = self.path.split("?", 1)[0]
        content, kind, status = b"", "text/plain", 404
        if path == "/app/index.html":
            content, kind, status = self.server.app_html.encode(), "text/html", 200
        elif path.startswith("/app/clerk/"):
            file = (self.server.app_files / path.removeprefix("/app/clerk/")).resolve()
            if self.server.app_files.resolve() in file.parents and file.is_file():
                content, kind, status = file.read_bytes(), "text/javascript", 200
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def forward(self, body: bytes) -> None:
        connection = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            connection.request(self.command, self.path, body=body or None, headers=dict(self.headers.items()))
            answer = connection.getresponse()
            content = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)
        finally:
            connection.close()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: a request line can carry a token."""


@dataclass
class Front:
    server: FrontServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def app_origin(self) -> str:
        return f"https://{APP_HOST}:{self.port}"

    @property
    def service_origin(self) -> str:
        return f"https://{SERVICE_HOST}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_front(app_files: Path) -> Front:
    """The front on a free port (upstream and page are set once the stack runs)."""
    server = FrontServer(("127.0.0.1", 0), FrontHandler)
    with tempfile.TemporaryDirectory() as directory:
        cert, key = self_signed(Path(directory))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.app_files = app_files
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return Front(server, thread)
