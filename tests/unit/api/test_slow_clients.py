"""Connections that send no request, or not all of a request's body, are closed: uvicorn
times out nothing before a request arrives, nor while its body does, so idle or trickling
connections each held a file descriptor, and enough of them left the service none for
Prometheus, AWS, Nomad or its health checks."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import pytest

from autoscaler.api import admission, http
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


@pytest.mark.parametrize(
    ("path", "token"),
    [("/v1/alertmanager", None), ("/v1/reload", "s3cret"), ("/v1/nowhere", None)],
    ids=["webhook-no-token", "reload-with-token", "unknown-path"],
)
def test_a_body_trickled_past_the_body_timeout_is_a_408_and_closed(
    serve_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch, path: str, token: str | None
) -> None:
    # A body sent a byte at a time kept its connection for ever (the request timeout stops
    # once the head is in): a few hundred of them took every file descriptor.
    monkeypatch.setattr(admission, "BODY_TIMEOUT", 0.5)
    api = serve_api(token=token)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: 1000\r\n{auth}\r\n"
    )
    with socket.create_connection(("127.0.0.1", api.port)) as sock:
        sock.sendall(head.encode() + b"{")
        sock.settimeout(0.2)
        answer = b""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                sock.sendall(b" ")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:  # reset: closed
                break
            if not chunk:
                break
            answer += chunk
        assert time.monotonic() < deadline, "the connection was still open after 5 s"
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in answer.lower()
    assert api.backend.calls == []


def test_a_client_that_hangs_up_mid_body_costs_no_traceback(
    serve_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    # Starlette's ClientDisconnect went up to uvicorn, which logged "Exception in ASGI
    # application" with a traceback: a line per client that sent half a body and left.
    api = serve_api()
    head = (
        b"POST /v1/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", api.port)) as sock:
            sock.sendall(head)
            time.sleep(0.1)  # the head is read, the body awaited
    with socket.create_connection(("127.0.0.1", api.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")
    time.sleep(0.2)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert api.backend.calls == []
