"""What uvicorn logs of a client's own mistakes: one warning, then a count per interval.

uvicorn logs a warning on `uvicorn.error` for every malformed request it answers 400
(`Invalid HTTP request received.`, without the client's address) and for every request
with an `Upgrade` header it does not support (`Unsupported upgrade request.`, plus a hint
to install a WebSocket library, which this API has no use for). Anyone who reaches the
port causes them, token or not: a scanner or a flood of garbage wrote a line per request.

`ClientErrorLog` is a filter on that logger. The first such warning of a kind is logged
as it comes, saying that more are counted; those that follow within `interval` seconds
are counted, not logged, and a warning of `autoscaler.http` says how many once the
interval is over (then the next interval counts). An interval without one closes, and the
next is logged at once again. Every one is counted for `/metrics` too (`counts`). The
WebSocket hint is never logged. `flush` (the server's stop) logs what is counted so far.
Any other record passes untouched. `Throttled` is that mechanism, for any kind of event
(the connection limit's log uses it too).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

INTERVAL = 60.0  # seconds
log = logging.getLogger("autoscaler.http")


@dataclass(frozen=True)
class _Kind:
    message: str  # uvicorn's, as it logs it
    one: str  # what a count is of: one
    many: str  # and more
    label: str  # its `kind` in `autoscaler_http_malformed_requests_total`


KINDS = {
    kind.message: kind
    for kind in (
        _Kind(
            "Invalid HTTP request received.",
            "invalid HTTP request (answered 400)",
            "invalid HTTP requests (each answered 400)",
            "invalid",
        ),
        _Kind(
            "Unsupported upgrade request.",
            "request with an unsupported Upgrade header (answered without upgrading)",
            "requests with an unsupported Upgrade header (each answered without upgrading)",
            "unsupported_upgrade",
        ),
    )
}
_WEBSOCKET_HINT = "No supported WebSocket library detected."


class Throttled:
    """Events of one kind, logged one line at once, then a count per interval: `note` says
    whether an event is the first of an interval (the caller logs it); those that follow
    within `interval` seconds are counted, and `report(count, seconds)` is called once the
    interval is over (from a timer thread; then the next interval counts), or at `flush`.
    An interval without one closes, and the next event is the first again."""

    def __init__(self, report: Callable[[int, int], None], interval: float = INTERVAL) -> None:
        self.interval = interval
        self._report = report
        self._lock = threading.Lock()
        self._window: _Window | None = None  # the interval being counted

    def note(self) -> bool:
        """Count an event in; True when it is the first of an interval: log it now."""
        with self._lock:
            if self._window is not None:
                self._window.count += 1
                return False
            self._open()
        return True

    def _open(self) -> None:
        window = _Window(time.monotonic())
        window.timer = threading.Timer(self.interval, self._over, args=(window,))
        window.timer.name = "throttled-log"
        window.timer.daemon = True
        self._window = window
        window.timer.start()

    def _over(self, window: _Window) -> None:
        with self._lock:
            if self._window is not window:  # flushed meanwhile
                return
            self._window = None
            if window.count:  # it came again: the next interval counts too
                self._open()
        self._tell(window)

    def flush(self) -> None:
        """Report what is counted so far, and close the interval."""
        with self._lock:
            window, self._window = self._window, None
        if window is not None:
            if window.timer is not None:
                window.timer.cancel()
            self._tell(window)

    def _tell(self, window: _Window) -> None:
        if window.count:
            self._report(window.count, max(1, round(time.monotonic() - window.opened)))


@dataclass
class _Window:
    """An interval in which events are counted."""

    opened: float  # time.monotonic() of its start
    timer: threading.Timer | None = None  # ends it
    count: int = 0  # events not logged in it


class ClientErrorLog(logging.Filter):
    """See the module docstring; one per process, on the `uvicorn.error` logger."""

    def __init__(self, interval: float = INTERVAL) -> None:
        super().__init__()
        self._lock = threading.Lock()
        # By uvicorn's message: the counted intervals of each kind.
        self._throttled = {
            message: Throttled(partial(_report, kind), interval) for message, kind in KINDS.items()
        }
        # Every one since the process started, logged or not, by label (for /metrics).
        self._totals = dict.fromkeys((kind.label for kind in KINDS.values()), 0)

    @property
    def interval(self) -> float:
        """Seconds an interval lasts (those opened from now on), the same for every kind."""
        return next(iter(self._throttled.values())).interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        for throttled in self._throttled.values():
            throttled.interval = seconds

    def counts(self) -> dict[str, int]:
        """How many requests of each kind (`_Kind.label`) were seen since the start."""
        with self._lock:
            return dict(self._totals)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        if message.startswith(_WEBSOCKET_HINT):
            return False
        kind = KINDS.get(message)
        if kind is None:
            return True
        with self._lock:
            self._totals[kind.label] += 1
        if not self._throttled[message].note():
            return False
        record.msg = (
            f"{message} More in the next {self.interval:g} s are counted, and logged as one line"
        )
        return True

    def flush(self) -> None:
        """Log what is counted so far, and close every interval."""
        for throttled in self._throttled.values():
            throttled.flush()


def _report(kind: _Kind, count: int, seconds: int) -> None:
    log.warning(
        "%d more %s in the last %d s, not logged one by one",
        count,
        kind.one if count == 1 else kind.many,
        seconds,
        extra={"count": count, "seconds": seconds},
    )


CLIENT_ERRORS = ClientErrorLog()


def install() -> ClientErrorLog:
    """Put `CLIENT_ERRORS` on uvicorn's logger (once, whatever the number of servers)."""
    logger = logging.getLogger("uvicorn.error")
    if CLIENT_ERRORS not in logger.filters:
        logger.addFilter(CLIENT_ERRORS)
    return CLIENT_ERRORS
