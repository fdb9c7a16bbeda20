"""Clients that ask for an answer and read none of it (or stop reading it).

The server's writing to such a connection pauses once the kernel's and the transport's
buffers are full, and the request's handler waits there for ever: before, those
connections counted as "a request being handled", so a handful of clients asking for
`/metrics` and never reading took every one of the `--api-max-connections` places and
`/healthz` answered 503 for as long as they stayed, each holding its answer in memory."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

from autoscaler.api import capacity
from tests.unit.api.conftest import Api, StubBackend
from tests.unit.api.test_connection_limit import _healthz

BIG = 8_000_000  # bytes of /metrics: more than the kernel's and the transport's buffers hold
METRICS = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class BigMetrics(StubBackend):
    def metrics(self) -> tuple[bytes, str]:
        self.calls.append("metrics")
        return b"#" * (BIG - 1) + b"\n", "text/plain; version=0.0.4"


@contextmanager
def _not_reading(api: Api, count: int, buffer: int = 4096) -> Iterator[list[socket.socket]]:
    """`count` connections that ask for /metrics and read nothing of it (their receive
    buffers `buffer` bytes)."""
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
            sock.connect(("127.0.0.1", api.port))
            sock.sendall(METRICS)
            socks.append(sock)
        yield socks


def _whole_answer(sock: socket.socket) -> bool:
    """Read what `sock` receives: True when its whole answer came, False when the server
    cut it off (a reset, or its end, before the answer's last byte)."""
    sock.settimeout(5.0)
    received = b""
    try:
        while not received.endswith(b"#\n"):
            chunk = sock.recv(1 << 20)
            if not chunk:
                return False
            received = received[-2:] + chunk
    except ConnectionResetError:
        return False
    return True


def _stalled(socks: list[socket.socket]) -> None:
    """Wait until the answer of each of `socks` has begun to come (then the server wrote
    all of it at once, and its writing is paused on what the client does not read)."""
    for sock in socks:
        sock.settimeout(10.0)
        assert sock.recv(1, socket.MSG_PEEK), "no answer"
    time.sleep(0.3)


def test_clients_that_read_none_of_their_answers_give_way_to_health_checks(
    serve_api: Callable[..., Api],
) -> None:
    api = serve_api(max_connections=4, backend=BigMetrics())
    with _not_reading(api, 4) as stuck:
        _stalled(stuck)
        for _ in range(2):
            answer = _healthz(api)
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]
        # One gave way to the first check (reset: what was left of its answer dropped),
        # the one stuck the longest; the second found its place free.
        assert sorted(_whole_answer(sock) for sock in stuck) == [False, True, True, True]
    assert api.server.connection_counts() == {
        "closed_idle": 0,
        "closed_receiving": 0,
        "closed_stalled": 1,
        "refused": 0,
    }


def test_a_client_that_reads_nothing_of_its_answer_is_closed_after_the_send_timeout(
    serve_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(capacity, "SEND_TIMEOUT", 0.5)
    api = serve_api(backend=BigMetrics())  # far from the limit: the timeout alone
    with _not_reading(api, 1) as (stuck,):
        _stalled([stuck])
        time.sleep(1.5)
        assert not _whole_answer(stuck), "held past the send timeout"
    assert api.server._protocol.capacity.send_timeouts() == 1
    assert "whose client read nothing of its answer for 0.5 s" in caplog.text


def test_a_client_reading_slowly_but_steadily_gets_its_whole_answer(
    serve_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rule is nginx's send_timeout: nothing read *at all* for that long, not the
    # whole answer within it.
    monkeypatch.setattr(capacity, "SEND_TIMEOUT", 0.5)
    api = serve_api(backend=BigMetrics())
    with _not_reading(api, 1, buffer=64 * 1024) as (slow,):
        _stalled([slow])
        slow.settimeout(5.0)
        received = b""
        started = time.monotonic()
        while not received.endswith(b"#\n"):
            chunk = slow.recv(64 * 1024)
            if not chunk:
                break  # closed by the server before the end
            received += chunk
            time.sleep(0.02)
        assert time.monotonic() - started > 1.0, "not slow enough to test the rule"
    assert received.count(b"#") == BIG - 1
    assert api.server._protocol.capacity.send_timeouts() == 0
