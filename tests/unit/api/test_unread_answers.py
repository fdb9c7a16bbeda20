"""Clients that ask for an answer and read none of it (or stop reading it).

The server's writing to such a connection pauses once the kernel's and the transport's
buffers are full, and the request's handler waits there for ever: before, those
connections counted as "a request being handled", so a handful of clients asking for
`/metrics` and never reading took every one of the `--api-max-connections` places and
`/healthz` answered 503 for as long as they stayed, each holding its answer in memory.
Each test sets the send timeout and the stall grace short (`STALL_AFTER`, also how often
what a client received is looked at)."""

from __future__ import annotations

import socket
import threading
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
    """/metrics of `size` bytes, ending in a newline (the rest `#`)."""

    def __init__(self, size: int = BIG) -> None:
        super().__init__()
        self.size = size

    def metrics(self) -> tuple[bytes, str]:
        self.calls.append("metrics")
        return b"#" * (self.size - 1) + b"\n", "text/plain; version=0.0.4"


@pytest.fixture(autouse=True)
def _short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "SETTLE", 0.02)
    monkeypatch.setattr(capacity, "STALL_AFTER", 0.1)
    monkeypatch.setattr(capacity, "SEND_TIMEOUT", 0.5)


def _flagged(api: Api, count: int) -> None:
    """Wait until `count` connections of `api` are found stalled (polled: timers run late
    on a busy machine)."""
    deadline = time.monotonic() + 10.0
    while len(api.server._protocol.capacity._stalled) < count:
        assert time.monotonic() < deadline, "not found stalled"
        time.sleep(0.02)


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
    serve_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capacity, "SEND_TIMEOUT", 60.0)  # the limit alone
    api = serve_api(max_connections=4, backend=BigMetrics())
    with _not_reading(api, 4) as stuck:
        _stalled(stuck)
        _flagged(api, 4)
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
    serve_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    api = serve_api(backend=BigMetrics())  # far from the limit: the timeout alone
    with _not_reading(api, 1) as (stuck,):
        _stalled([stuck])
        time.sleep(1.5)
        assert not _whole_answer(stuck), "held past the send timeout"
    assert api.server._protocol.capacity.send_timeouts() == 1
    assert "whose client read nothing of its answer for 0.5 s" in caplog.text


def test_a_client_reading_slowly_but_steadily_gets_its_whole_answer(
    serve_api: Callable[..., Api],
) -> None:
    # The rule is nginx's send_timeout: nothing read *at all* for that long, not the
    # whole answer within it. (Read slowly, the kernel's send queue drains for seconds
    # before the transport's buffer moves: what the client received counts, not that.)
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


def test_a_client_reading_steadily_is_not_closed_to_make_room(
    serve_api: Callable[..., Api],
) -> None:
    # A big answer written at once keeps the server's writing paused for most of its
    # delivery, however fast its client reads: that is no stall. At the limit, a new
    # connection is refused (503) rather than cutting a scrape that is being read.
    api = serve_api(max_connections=1, backend=BigMetrics())
    got: list[int] = []
    with _not_reading(api, 1, buffer=64 * 1024) as (reader,):
        _stalled([reader])

        def read() -> None:
            received, tail = 0, b""
            reader.settimeout(5.0)
            while not tail.endswith(b"#\n"):
                chunk = reader.recv(64 * 1024)
                if not chunk:
                    break
                received, tail = received + len(chunk), (tail + chunk)[-2:]
                time.sleep(0.02)
            got.append(received)

        thread = threading.Thread(target=read)
        thread.start()
        time.sleep(0.5)
        assert _healthz(api).startswith(b"HTTP/1.1 503 ")
        thread.join(30)
    assert got and got[0] > BIG, "the steadily read answer was cut"
    assert api.server.connection_counts()["closed_stalled"] == 0


def test_a_second_answer_on_a_kept_alive_connection_has_the_whole_timeout(
    serve_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first answer read whole, the next one asked for on the same connection and read
    # after a pause shorter than the send timeout: it is not cut. (A first version
    # compared the bytes left of the second answer with those left of the first.)
    monkeypatch.setattr(capacity, "SEND_TIMEOUT", 1.0)
    backend = BigMetrics()
    api = serve_api(backend=backend)
    with socket.create_connection(("127.0.0.1", api.port)) as sock:
        sock.sendall(METRICS)
        assert _whole_answer(sock)
        time.sleep(0.4)
        backend.size = BIG + 1_000_000  # more left of it than of the first
        sock.sendall(METRICS)
        time.sleep(0.6)
        assert _whole_answer(sock), "the second answer was cut"
    assert api.server.send_timeouts() == 0


def test_an_answer_left_under_the_transport_high_water_mark_is_timed_out_too(
    serve_api: Callable[..., Api],
) -> None:
    # What the kernel's queue cannot take of an answer stays in the transport's buffer:
    # left under 64 KiB, the server's writing never pauses, and nothing watched it; the
    # connection, closed when idle, then waited for its client to read it for ever.
    backend = BigMetrics()
    api = serve_api(backend=backend)
    with _not_reading(api, 1) as (probe,):  # how much the kernel's queues take
        _stalled([probe])
        (connection,) = api.server._protocol.capacity._open
        taken = backend.size - connection.transport.get_write_buffer_size()
    time.sleep(0.2)
    backend.size = taken + 20_000  # 20 kB left in the transport's buffer
    with _not_reading(api, 1) as (stuck,):
        _stalled([stuck])
        (connection,) = api.server._protocol.capacity._open
        assert 0 < connection.transport.get_write_buffer_size() < 64 * 1024
        assert not connection.flow.write_paused
        time.sleep(1.5)
        assert not _whole_answer(stuck), "held past the send timeout"
    assert api.server.send_timeouts() == 1


def test_connections_with_answers_left_unread_stay_within_the_limit(
    serve_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each new client leaves 20 kB of its answer unread in the transport's buffer, and the
    # one before gives way to it, not yet found stalled: a first version closed it
    # gracefully, a close that waits for the client to read, so its descriptor (and its
    # answer) stayed held for the send timeout outside the limit: as many as came.
    monkeypatch.setattr(capacity, "STALL_AFTER", 30.0)
    monkeypatch.setattr(capacity, "SEND_TIMEOUT", 60.0)
    backend = BigMetrics()
    api = serve_api(max_connections=1, backend=backend)
    with _not_reading(api, 1) as (probe,):  # how much the kernel's queues take
        _stalled([probe])
        (connection,) = api.server._protocol.capacity._open
        taken = backend.size - connection.transport.get_write_buffer_size()
    time.sleep(0.2)
    backend.size = taken + 20_000
    live = api.server._server.server_state.connections  # uvicorn's, until each is lost
    with ExitStack() as stack:
        for _ in range(5):  # one after the other, each answered (idle) before the next
            stack.enter_context(_not_reading(api, 1)).pop().recv(1, socket.MSG_PEEK)
            time.sleep(0.3)
        deadline = time.monotonic() + 5.0
        while len(live) > 1:
            assert time.monotonic() < deadline, f"{len(live)} connections held, limit 1"
            time.sleep(0.05)
    assert api.server.connection_counts()["closed_idle"] == 4
