"""uvicorn logged a warning per malformed request (and two per request with an Upgrade
header it does not support, one of them a hint to install a WebSocket library): anyone
who reaches the port, token or not, wrote a log line per request. Now: the first warning,
then a count per interval (`autoscaler.api.client_log`)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from autoscaler.api import client_log
from tests.support.net import wait_until
from tests.unit.api.conftest import Api

GARBAGE = b"NOT HTTP AT ALL\r\n\r\n"
UPGRADE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: upgrade\r\nUpgrade: %s\r\n\r\n"


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    """No interval left open by another test of this process."""
    client_log.CLIENT_ERRORS.flush()
    yield
    client_log.CLIENT_ERRORS.flush()


def _send(api: Api, data: bytes) -> bytes:
    """`data` on a connection of its own; the answer's first line."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, f"closed after {answer!r}"
            answer += chunk
    return answer.split(b"\r\n")[0]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name in ("uvicorn.error", "autoscaler.http")
    ]


def test_a_flood_of_malformed_requests_is_one_warning_and_a_count(
    serve_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    api = serve_api()
    for _ in range(50):
        assert _send(api, GARBAGE) == b"HTTP/1.1 400 Bad Request"  # each is still answered
    assert _warnings(caplog) == [
        "uvicorn.error: Invalid HTTP request received. More in the next 60 s are counted, "
        "and logged as one line"
    ]
    client_log.CLIENT_ERRORS.flush()  # as the server's stop does
    assert _warnings(caplog)[1:] == [
        "autoscaler.http: 49 more invalid HTTP requests (each answered 400) in the last 1 s, "
        "not logged one by one"
    ]
    counted = caplog.records[-1]
    assert (counted.levelno, getattr(counted, "count", None)) == (logging.WARNING, 49)


def test_the_count_is_logged_when_the_interval_is_over_and_the_next_one_at_once(
    serve_api: Callable[..., Api],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING)
    # Intervals of 3 s: the send below must land in the interval opened as the count was
    # logged, and the sleep outlast the next one's timer; with 1 s, a busy machine had
    # 1 s and 0.6 s for them.
    interval = 3.0
    monkeypatch.setattr(client_log.CLIENT_ERRORS, "interval", interval)
    api = serve_api()
    for _ in range(5):
        _send(api, GARBAGE)
    wait_until(lambda: len(_warnings(caplog)) == 2, timeout=15)
    assert "4 more invalid HTTP requests" in _warnings(caplog)[1]
    # A count was logged: the next interval counts too, and has nothing to say.
    _send(api, GARBAGE)
    wait_until(lambda: len(_warnings(caplog)) == 3, timeout=15)
    assert "1 more invalid HTTP request (answered 400)" in _warnings(caplog)[2]
    time.sleep(1.6 * interval)  # an interval without one: it closes
    assert len(_warnings(caplog)) == 3
    _send(api, GARBAGE)
    assert _warnings(caplog)[3].startswith("uvicorn.error: Invalid HTTP request received.")


def test_an_unsupported_upgrade_is_one_warning_without_the_websocket_hint(
    serve_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    api = serve_api()
    for protocol in (b"websocket", b"h2c", b"websocket"):
        assert _send(api, UPGRADE % protocol) == b"HTTP/1.1 200 OK"
    client_log.CLIENT_ERRORS.flush()
    assert _warnings(caplog) == [
        "uvicorn.error: Unsupported upgrade request. More in the next 60 s are counted, "
        "and logged as one line",
        "autoscaler.http: 2 more requests with an unsupported Upgrade header (each answered "
        "without upgrading) in the last 1 s, not logged one by one",
    ]


def test_other_records_pass_untouched() -> None:
    errors = client_log.ClientErrorLog()
    record = logging.makeLogRecord(
        {
            "name": "uvicorn.error",
            "levelno": logging.ERROR,
            "msg": "Exception in ASGI application\n",
        }
    )
    assert errors.filter(record)
    assert errors.filter(record)
    assert record.msg == "Exception in ASGI application\n"


def test_the_filter_is_on_uvicorns_logger_once(serve_api: Callable[..., Api]) -> None:
    serve_api()
    serve_api()
    filters = logging.getLogger("uvicorn.error").filters
    assert filters.count(client_log.CLIENT_ERRORS) == 1


def test_every_malformed_request_is_counted_for_metrics(serve_api: Callable[..., Api]) -> None:
    # Logged as a count a minute, they were in no metric: a flood of garbage at the port
    # (a scanner, a misconfigured health check) could not be graphed or alerted on.
    api = serve_api()
    before = client_log.CLIENT_ERRORS.counts()
    for _ in range(5):
        assert _send(api, GARBAGE) == b"HTTP/1.1 400 Bad Request"
    _send(api, UPGRADE % b"websocket")
    after = client_log.CLIENT_ERRORS.counts()
    assert set(after) == {"invalid", "unsupported_upgrade"}
    assert after["invalid"] - before["invalid"] == 5  # the first, logged, and those counted
    assert after["unsupported_upgrade"] - before["unsupported_upgrade"] == 1
