"""The API holds `--api-max-connections` connections at most: each costs a file descriptor,
shared with the service's Prometheus, AWS and Nomad connections. Two thousand idle
connections took every descriptor (ulimit 1024) for the 10 s the request timeout gives
them: the health checks went unanswered and evaluations held with EMFILE."""

from __future__ import annotations

import asyncio
import logging
import re
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

from autoscaler.api import capacity
from autoscaler.api.client_log import Throttled
from autoscaler.api.models import EvaluationOut
from autoscaler.api.request_metrics import RequestMetrics
from tests.support.net import wait_until
from tests.unit.api.conftest import Api, StubBackend

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
    assert api.server.connection_counts() == {
        "closed_idle": 9 * LIMIT + 1,
        "closed_receiving": 0,
        "closed_stalled": 0,
        "refused": 0,
    }


class SlowBackend(StubBackend):
    """Evaluations that take until `release` is set (or 10 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    async def evaluate(self, name: str, *, preview: bool) -> EvaluationOut:
        await asyncio.to_thread(self.release.wait, 10.0)
        return await super().evaluate(name, preview=preview)


EVALUATE = (
    b"POST /v1/policies/web/evaluate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
)
# A webhook request whose head is in and whose body is still coming (a byte of 100).
TRICKLED = (
    b"POST /v1/alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
)


def test_a_connection_over_the_limit_when_each_has_a_request_being_handled_is_a_503(
    serve_api: Callable[..., Api],
) -> None:
    backend = SlowBackend()
    api = serve_api(max_connections=2, backend=backend)
    try:
        with _connections(api, 2, EVALUATE) as busy:
            time.sleep(0.3)
            answer = _healthz(api)
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
            assert b"retry-after: 1\r\n" in answer
            assert b"--api-max-connections" in answer
            assert all(_open_by_server(sock) for sock in busy), "a request was cut off"
            busy[0].close()
            time.sleep(0.3)
            assert _healthz(api).startswith(b"HTTP/1.1 200 ")
    finally:
        backend.release.set()
    assert api.server.connection_counts() == {
        "closed_idle": 0,
        "closed_receiving": 0,
        "closed_stalled": 0,
        "refused": 1,
    }


def test_trickled_request_bodies_give_way_to_health_checks(
    serve_api: Callable[..., Api],
) -> None:
    # Before, a request counted as under way once its head was in: connections trickling
    # their bodies held every place for the 30 s body timeout, and /healthz got 503.
    counted = RequestMetrics()
    api = serve_api(max_connections=LIMIT, request_metrics=counted)
    with ExitStack() as stack:
        trickling = stack.enter_context(_connections(api, LIMIT, TRICKLED))
        for _ in range(3):
            time.sleep(0.3)
            started = time.monotonic()
            answer = _healthz(api)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            # Within the README health check's 2 s (held back, it was answered 503).
            assert time.monotonic() - started < 2.0
            # Every place taken by a trickled body again.
            trickling += stack.enter_context(_connections(api, 1, TRICKLED))
        # The oldest gave way, each answered 408; the others are still held.
        for sock in trickling[:3]:
            assert _answer(sock).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert all(_open_by_server(sock) for sock in trickling[3:])
        # Counted as the 408 their clients read (it was a 400, as for a client that hangs
        # up). Looked at before the others close: each of those, a client hanging up
        # mid-body, is a 400 (a test that looked after them failed now and then).
        deadline = time.monotonic() + 5.0
        while counted.seen().answers.get(("/v1/alertmanager", "POST", "408"), 0) < 3:
            assert time.monotonic() < deadline, counted.seen().answers
            time.sleep(0.05)
        assert counted.seen().answers[("/v1/alertmanager", "POST", "408")] == 3
        assert ("/v1/alertmanager", "POST", "400") not in counted.seen().answers
    assert api.server.connection_counts() == {
        "closed_idle": 0,
        "closed_receiving": 3,
        "closed_stalled": 0,
        "refused": 0,
    }


def test_an_idle_connection_gives_way_before_one_receiving_a_body(
    serve_api: Callable[..., Api],
) -> None:
    api = serve_api(max_connections=2)
    # A GET, answered, then a pipelined webhook request whose body is still coming: its
    # connection is not idle (it was once marked idle after the GET's answer).
    keep_alive = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", api.port)) as pipelined:
        pipelined.sendall(keep_alive + TRICKLED)
        pipelined.settimeout(5.0)
        assert pipelined.recv(4096).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.2)
        with _connections(api, 2) as (idle, newest):
            time.sleep(0.3)
            assert not _open_by_server(idle)
            assert _open_by_server(newest)
            assert _open_by_server(pipelined), "the request whose body is coming was closed"
    assert api.server.connection_counts() == {
        "closed_idle": 1,
        "closed_receiving": 0,
        "closed_stalled": 0,
        "refused": 0,
    }


def test_a_flood_over_the_limit_is_one_line_then_a_count(
    serve_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="autoscaler.http")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "autoscaler.http"]

    api = serve_api(max_connections=2)
    with _connections(api, 52):
        # Each of the 50 over the limit closed or refused before looking (a sleep of 0.5 s
        # let a busy server still be at it, and the count logged at stop come out short).
        wait_until(
            lambda: sum(api.server.connection_counts().values()) == 50,
            timeout=15,
            what="the 50 connections over the limit closed or refused",
        )
        assert len(lines()) == 1, lines()
        assert lines()[0].startswith(
            "the HTTP API holds 2 connections, its limit (--api-max-connections): one more "
            "was closed, the longest idle"
        )
    api.server.stop()  # the rest is logged at the latest then
    assert len(lines()) == 2, lines()
    assert re.fullmatch(
        r"the HTTP API holds 2 connections, its limit \(--api-max-connections\): 49 "
        r"connections closed or refused in the last \d+ s, not logged one by one",
        lines()[1],
    ), lines()[1]
    assert caplog.records[-1].__dict__["count"] == 49


def test_throttled_reports_the_count_once_the_interval_is_over() -> None:
    reported: list[tuple[int, int]] = []
    throttled = Throttled(lambda count, seconds: reported.append((count, seconds)), 0.2)
    assert [throttled.note() for _ in range(4)] == [True, False, False, False]
    assert reported == []
    wait_until(lambda: bool(reported), timeout=5.0, what="the count reported")
    assert reported == [(3, 1)]
    time.sleep(0.6)  # an interval without one closes: the next is the first again
    assert throttled.note()
    throttled.flush()
    assert reported == [(3, 1)]


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
