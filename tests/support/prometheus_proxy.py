"""A fault-injecting proxy in front of a real Prometheus: what the server will not do on demand.

Every request is forwarded to `upstream` (the real server, which answers values, NaN and
several series itself) unless a test programmed a fault for that exact PromQL text. A
fault lasts until `heal(query)`, so a policy meets it at every evaluation:

    fail(query, 503)          an HTTP error status with a body
    answer(query, body)       a 200 whose body is not the Prometheus API (garbage)
    answer_data(query, data)  a well-formed answer with `data` of the test's choosing
                              (a string result for a vector query)
    truncate(query)           the real answer, cut off half-way: the connection closes
                              before the announced Content-Length
    delay(query, seconds)     the real answer, late (beyond the caller's deadline)

Started with `port=` on a port nothing listens on, it plays a Prometheus that is down until
`start()`. With `url_limit=N` it refuses a request whose URL is longer than N bytes with
414, as nginx does past its 8 KB buffer (`large_client_header_buffers`).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.net import forward, free_port


@dataclass(frozen=True)
class _Fault:
    status: int = 200
    body: bytes | None = None  # None: the upstream's answer
    truncate: bool = False
    delay: float = 0.0
    warnings: tuple[str, ...] = ()  # added to the real answer, as Prometheus adds them


class PrometheusProxy:
    """The proxy and its test controls; `queries` counts the queries it received, per text."""

    def __init__(
        self, upstream: str, *, port: int | None = None, url_limit: int | None = None
    ) -> None:
        self.upstream = upstream
        self.url_limit = url_limit
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.queries: dict[str, int] = {}
        self._faults: dict[str, _Fault] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Listen on `port` (a Prometheus that was down comes up)."""
        server = _Server(self)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- faults ----------------------------------------------------------------------------

    def fail(self, query: str, status: int, body: bytes = b"Service Unavailable") -> None:
        """Answer `query` with HTTP `status` and `body`."""
        self._program(query, _Fault(status=status, body=body))

    def answer(self, query: str, body: bytes, status: int = 200) -> None:
        """Answer `query` with these raw bytes (e.g. a login page), not the API's JSON."""
        self._program(query, _Fault(status=status, body=body))

    def answer_data(self, query: str, data: Mapping[str, Any]) -> None:
        """Answer `query` with `{"status": "success", "data": data}`."""
        body = json.dumps({"status": "success", "data": dict(data)}).encode()
        self._program(query, _Fault(body=body))

    def warn(self, query: str, *warnings: str) -> None:
        """Answer `query` with the real answer plus these `warnings`: what Prometheus sends
        when a `remote_read` endpoint fails (status success, the data it could read)."""
        self._program(query, _Fault(warnings=warnings))

    def truncate(self, query: str) -> None:
        """Send the first half of the real answer to `query`, then close the connection."""
        self._program(query, _Fault(truncate=True))

    def delay(self, query: str, seconds: float) -> None:
        """Send the real answer to `query` after `seconds`."""
        self._program(query, _Fault(delay=seconds))

    def heal(self, query: str) -> None:
        """Forward `query` to the real server again."""
        with self._lock:
            self._faults.pop(query, None)

    def count(self, query: str) -> int:
        with self._lock:
            return self.queries.get(query, 0)

    def _program(self, query: str, fault: _Fault) -> None:
        with self._lock:
            self._faults[query] = fault

    def _fault_for(self, query: str | None) -> _Fault | None:
        with self._lock:
            if query is None:
                return None
            self.queries[query] = self.queries.get(query, 0) + 1
            return self._faults.get(query)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self, body: bytes) -> None:
        proxy = self.server.proxy
        if proxy.url_limit is not None and len(self.path) > proxy.url_limit:
            self._send(414, {"Content-Type": "text/html"}, b"<h1>414 Request-URI Too Large</h1>")
            return
        fault = proxy._fault_for(_query_of(self.path, body))
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.body is not None:
            self._send(fault.status, {"Content-Type": "application/json"}, fault.body)
            return
        status, headers, payload = self._forward(body)
        if fault is not None and fault.warnings and status == 200:
            encoding = {k.lower(): k for k in headers}.get("content-encoding")
            if encoding is not None and headers[encoding].lower() == "gzip":
                payload = gzip.decompress(payload)  # sent on as plain JSON
                del headers[encoding]
            answer = json.loads(payload)
            answer["warnings"] = list(fault.warnings)
            payload = json.dumps(answer).encode()
        if fault is not None and fault.truncate:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(status, headers, payload)

    def _send(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return forward(self, self.server.proxy.upstream, body)


def _query_of(path: str, body: bytes) -> str | None:
    """The PromQL text of a query request (URL or form body), or None for other paths."""
    parts = urllib.parse.urlsplit(path)
    if not parts.path.endswith("/api/v1/query"):
        return None
    params = urllib.parse.parse_qs(parts.query) | urllib.parse.parse_qs(body.decode())
    return params.get("query", [None])[0]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: PrometheusProxy) -> None:
        super().__init__(("127.0.0.1", proxy.port), _Handler)
        self.proxy = proxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that gave up on a delayed answer hangs up, on purpose."""


@contextmanager
def serve_prometheus_proxy(
    upstream: str, *, port: int | None = None, url_limit: int | None = None
) -> Iterator[PrometheusProxy]:
    """A started `PrometheusProxy` in front of `upstream` until the block ends."""
    proxy = PrometheusProxy(upstream, port=port, url_limit=url_limit)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
