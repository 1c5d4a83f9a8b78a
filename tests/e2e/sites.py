"""Other origins for the browser tests: a tiny HTTP server that serves pages by path (an
application, a webmail, an attacker's site), and the attacker's auto-submitting form."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# The attacker: an auto-submitting cross-site form that posts a token to the stack's accept route.
ATTACK_FORM = """<!doctype html><title>Win a prize</title>
<form id="f" method="post" action="{stack}/accept-token"><input type="hidden" name="token" value="{token}"></form>
<script>document.getElementById("f").submit();</script>"""


class Site:
    """A tiny origin serving pages by path (``/page?...`` -> ``pages[path](query)``)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.pages: dict[str, Any] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                render = pages.get(url.path)
                body = render({k: v[0] for k, v in parse_qs(url.query).items()}).encode() if render else b"missing"
                self.send_response(200 if render else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
