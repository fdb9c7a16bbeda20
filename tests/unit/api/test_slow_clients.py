"""Connections that send no request are closed: uvicorn times out nothing before a request
arrives, so idle or trickling connections each held a file descriptor, and enough of them
left the service none for Prometheus, AWS, Nomad or its health checks."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from autoscaler.api import http
from tests.unit.api.conftest import Api


def _response(sock: socket.socket) -> bytes:
    """One whole response to GET /healthz (its JSON body ends with `}`)."""
    sock.settimeout(5.0)
    data = b""
    while not data.endswith(b"}"):
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes `sock` (EOF) within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False


@pytest.mark.parametrize(
    "sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: 127"], ids=["idle", "trickle"]
)
def test_a_connection_without_a_whole_request_is_closed(
    serve_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch, sent: bytes
) -> None:
    monkeypatch.setattr(http, "REQUEST_TIMEOUT", 0.3)
    api = serve_api()
    with socket.create_connection(("127.0.0.1", api.port)) as sock:
        sock.sendall(sent)
        assert _closed_within(sock, 5.0)


def test_a_connection_that_sends_its_request_is_answered_and_kept_alive(
    serve_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "REQUEST_TIMEOUT", 0.3)
    api = serve_api()
    with socket.create_connection(("127.0.0.1", api.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(0.1)  # within the timeout after the response: the next one is served
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")
        assert _closed_within(sock, 5.0)  # then idle: closed
