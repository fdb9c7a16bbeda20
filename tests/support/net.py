"""Small networking helpers shared by the server fixtures."""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

# A plain HTTP opener: tests talk to 127.0.0.1 and must not go through an env proxy.
LOCAL_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
)


def forward(
    handler: BaseHTTPRequestHandler, upstream: str, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Send the request `handler` is serving (with `body`) to `upstream`, as a proxy would:
    its status, the headers worth passing back, and its body."""
    netloc = urllib.parse.urlsplit(upstream).netloc
    conn = http.client.HTTPConnection(netloc, timeout=30)
    try:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        conn.request(handler.command, handler.path, body=body or None, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        skip = HOP_BY_HOP | {"content-length", "date", "server"}
        kept = {k: v for k, v in response.getheaders() if k.lower() not in skip}
        return response.status, kept, payload
    finally:
        conn.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll `predicate` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


@dataclass
class SlowLookups:
    """Lookups of `host`, which resolves to 127.0.0.1: those after the first `fast` take
    `delay` seconds (a slow DNS: no connect or read timeout bounds it). `count`: so far."""

    host: str
    delay: float
    fast: int = 0
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def slow(self) -> bool:
        with self._lock:
            self.count += 1
            return self.count > self.fast


def slow_lookups(
    monkeypatch: pytest.MonkeyPatch, host: str, *, delay: float, fast: int = 0
) -> SlowLookups:
    """Make this process resolve `host` to 127.0.0.1, slowly after `fast` lookups (every
    new connection looks its host up: HTTP clients keep no DNS cache of their own)."""
    lookups = SlowLookups(host, delay, fast)
    real = socket.getaddrinfo

    def getaddrinfo(name: Any, *args: Any, **kwargs: Any) -> Any:
        if name == host:
            if lookups.slow():
                time.sleep(delay)
            name = "127.0.0.1"
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups
