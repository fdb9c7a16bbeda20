"""The API holds `--api-max-connections` connections at most: each costs a file descriptor,
shared with the service's Prometheus, AWS and Nomad connections. Two thousand idle
connections took every descriptor (ulimit 1024) for the 10 s the request timeout gives
them: the health checks went unanswered and evaluations held with EMFILE."""

from __future__ import annotations

import logging
import resource
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

from autoscaler.api import capacity
from tests.unit.api.conftest import Api

LIMIT = 20
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def _answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes `sock`."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def _open_by_server(sock: socket.socket) -> bool:
    """Whether the server still holds `sock` open (it has neither closed nor reset it)."""
    sock.settimeout(0.01)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except TimeoutError:
        return True
    except ConnectionError:
        return False


@contextmanager
def _connections(api: Api, count: int, sent: bytes = b"") -> Iterator[list[socket.socket]]:
    """`count` connections to `api`, opened one after the other, each having sent `sent`."""
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", api.port)))
            sock.sendall(sent)
            socks.append(sock)
        yield socks


def _healthz(api: Api) -> bytes:
    with socket.create_connection(("127.0.0.1", api.port), timeout=5.0) as sock:
        sock.sendall(HEALTHZ)
        return _answer(sock)


@pytest.mark.parametrize(
    "sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: 127"], ids=["idle", "trickle"]
)
def test_a_flood_of_idle_connections_closes_the_longest_idle_and_health_checks_answer(
    serve_api: Callable[..., Api], sent: bytes
) -> None:
    api = serve_api(max_connections=LIMIT)
    with _connections(api, 10 * LIMIT, sent) as flood:
        deadline = time.monotonic() + 5.0
        held = flood
        while len(held) > LIMIT and time.monotonic() < deadline:
            time.sleep(0.05)
            held = [sock for sock in flood if _open_by_server(sock)]
        assert held == flood[-LIMIT:], f"{len(held)} held; the newest {LIMIT} should be"
        for _ in range(5):
            assert _healthz(api).startswith(b"HTTP/1.1 200 "), "a health check went unanswered"
    assert api.server.connection_counts() == {"closed_idle": 9 * LIMIT + 1, "refused": 0}


def test_a_connection_over_the_limit_when_each_has_a_request_under_way_is_a_503(
    serve_api: Callable[..., Api],
) -> None:
    api = serve_api(max_connections=2)
    # Two requests under way: their heads are in, their bodies still coming.
    head = (
        b"POST /v1/alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    with _connections(api, 2, head) as busy:
        time.sleep(0.3)
        answer = _healthz(api)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
        assert b"retry-after: 1\r\n" in answer
        assert b"--api-max-connections" in answer
        assert all(_open_by_server(sock) for sock in busy), "a request under way was cut off"
        busy[0].close()
        time.sleep(0.3)
        assert _healthz(api).startswith(b"HTTP/1.1 200 ")
    assert api.server.connection_counts() == {"closed_idle": 0, "refused": 1}


@pytest.mark.parametrize(("limit", "warned"), [(256, False), (1000, True)])
def test_a_limit_that_leaves_too_few_file_descriptors_is_warned_of(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, limit: int, warned: bool
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (1024, 4096))
    capacity.check_fits(limit)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(messages) == warned, messages
    if warned:
        assert "--api-max-connections 1000" in messages[0]
        assert "1024 (ulimit -n)" in messages[0]
