"""A counting proxy in front of a real Prometheus: which instant queries reached it, and when.

Tests of grouped queries must count what Prometheus received, per query text; Prometheus'
own `prometheus_http_requests_total` counts requests but not which query each one was.
The proxy forwards every request unchanged (GET or POST) to the upstream server and
records `(monotonic time, query)` for each `/api/v1/query`.

Fixture: `counting_prometheus` (in front of the session's `prometheus`).
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.net import LOCAL_HTTP, free_port


class CountingProxy:
    """Forwards to `upstream`; `queries` lists `(monotonic time, query)` of instant queries."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.queries: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", self.port), _Handler, self)
        # Polling every 0.05 s: stop() waits up to one poll (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, query: str, since: float = 0.0, until: float = float("inf")) -> int:
        """How many times `query` reached Prometheus between `since` and `until`."""
        with self.lock:
            return sum(1 for at, q in self.queries if q == query and since <= at < until)

    def seen(self) -> set[str]:
        with self.lock:
            return {q for _, q in self.queries}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, proxy: CountingProxy) -> None:
        super().__init__(address, handler)
        self.proxy = proxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._forward(self.rfile.read(length) if length else b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self, body: bytes | None) -> None:
        proxy = self.server.proxy
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/v1/query":
            params = urllib.parse.parse_qs(url.query)
            if body:
                params.update(urllib.parse.parse_qs(body.decode()))
            with proxy.lock:
                proxy.queries.append((time.monotonic(), params.get("query", [""])[0]))
        request = urllib.request.Request(
            proxy.upstream + self.path,
            data=body,
            method=self.command,
            headers={k: v for k, v in self.headers.items() if k.lower() in ("content-type",)},
        )
        try:
            with LOCAL_HTTP.open(request, timeout=30) as answer:
                status, data = answer.status, answer.read()
                content_type = answer.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
            content_type = exc.headers.get("Content-Type", "application/json")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def counting_prometheus(prometheus: Any) -> Iterator[CountingProxy]:
    """A counting proxy in front of the session's Prometheus; `.url` is what to query."""
    proxy = CountingProxy(prometheus.url).start()
    yield proxy
    proxy.stop()
