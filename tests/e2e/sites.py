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
    """A tiny origin serving pages by path (``/page?...`` -> ``pages[path](query)``; another path gets
    ``default`` if given, else a 404), remembering the path and ``Cookie`` header of each visit."""

    def __init__(self, host: str = "127.0.0.1", default: str | None = None) -> None:
        self.pages: dict[str, Any] = {}
        self.visits: list[tuple[str, str]] = []
        pages, visits = self.pages, self.visits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                visits.append((self.path, self.headers.get("cookie", "")))
                url = urlsplit(self.path)
                render = pages.get(url.path)
                page = render({k: v[0] for k, v in parse_qs(url.query).items()}) if render else default
                body = page.encode() if page is not None else b"missing"
                self.send_response(200 if page is not None else 404)
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

    def cookies_of(self, path: str) -> str:
        """The ``Cookie`` header of the last visit of ``path`` (with its query)."""
        return next(cookie for seen, cookie in reversed(self.visits) if seen == path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
