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
Any other record passes untouched.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

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


@dataclass
class _Window:
    """An interval in which the warnings of one kind are counted."""

    kind: _Kind
    opened: float  # time.monotonic() of its start
    timer: threading.Timer | None = None  # ends it
    count: int = 0  # warnings not logged in it


class ClientErrorLog(logging.Filter):
    """See the module docstring; one per process, on the `uvicorn.error` logger."""

    def __init__(self, interval: float = INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}  # by uvicorn's message: the kinds being counted
        # Every one since the process started, logged or not, by label (for /metrics).
        self._totals = dict.fromkeys((kind.label for kind in KINDS.values()), 0)

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
            window = self._windows.get(message)
            if window is not None:
                window.count += 1
                return False
            self._open(message, kind)
        record.msg = (
            f"{message} More in the next {self.interval:g} s are counted, and logged as one line"
        )
        return True

    def _open(self, message: str, kind: _Kind) -> None:
        window = _Window(kind, time.monotonic())
        window.timer = threading.Timer(self.interval, self._over, args=(message, window))
        window.timer.name = "client-error-log"
        window.timer.daemon = True
        self._windows[message] = window
        window.timer.start()

    def _over(self, message: str, window: _Window) -> None:
        with self._lock:
            if self._windows.get(message) is not window:  # flushed meanwhile
                return
            del self._windows[message]
            if window.count:  # it came again: the next interval counts too
                self._open(message, window.kind)
        self._report([window])

    def flush(self) -> None:
        """Log what is counted so far, and close every interval."""
        with self._lock:
            windows = list(self._windows.values())
            self._windows.clear()
        for window in windows:
            if window.timer is not None:
                window.timer.cancel()
        self._report(windows)

    @staticmethod
    def _report(windows: list[_Window]) -> None:
        now = time.monotonic()
        for window in windows:
            if not window.count:
                continue
            seconds = max(1, round(now - window.opened))
            log.warning(
                "%d more %s in the last %d s, not logged one by one",
                window.count,
                window.kind.one if window.count == 1 else window.kind.many,
                seconds,
                extra={"count": window.count, "seconds": seconds},
            )


CLIENT_ERRORS = ClientErrorLog()


def install() -> ClientErrorLog:
    """Put `CLIENT_ERRORS` on uvicorn's logger (once, whatever the number of servers)."""
    logger = logging.getLogger("uvicorn.error")
    if CLIENT_ERRORS not in logger.filters:
        logger.addFilter(CLIENT_ERRORS)
    return CLIENT_ERRORS
