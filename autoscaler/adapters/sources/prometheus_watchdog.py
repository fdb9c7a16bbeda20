"""A whole answer from Prometheus within one attempt's timeout, however slowly it comes.

requests' `timeout` bounds each wait for the socket, not the request: an answer whose body
arrives a few bytes at a time (a congested link, a proxy that trickles a large grouped
answer) never waits long enough at once to time out, and one attempt lasted as long as
the server took, whatever `--query-timeout` and the query's deadline said. `read_within`
reads the body under a deadline instead: a watchdog thread cuts the connection of a read
still going when the attempt's timeout has passed since the request was sent, and the
attempt fails as a timeout (retried within the query's deadline, as any other).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from dataclasses import dataclass

import requests

__all__ = ["read_within"]


def read_within(response: requests.Response, timeout: object) -> None:
    """Read `response`'s body now, within `timeout` seconds (a number) of the request being
    sent (`response.elapsed` of it is gone); raise `requests.exceptions.ReadTimeout` when
    it is not complete by then. Nothing is bounded for another `timeout` (a tuple, None)
    or when the connection's socket cannot be reached."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if not isinstance(timeout, int | float) or not isinstance(sock, socket.socket):
        return
    watch = _WATCHDOG.arm(sock, timeout - response.elapsed.total_seconds())
    try:
        response.content  # noqa: B018 (read here, watched, rather than later, unwatched)
    except Exception:
        if not _WATCHDOG.disarm(watch):
            raise
    else:
        if not _WATCHDOG.disarm(watch):
            return
    # Cut: even a read that ended without an error may be short (no Content-Length).
    raise requests.exceptions.ReadTimeout(
        f"the answer was not complete {timeout:.2g}s after the request was sent "
        "(its body came too slowly)"
    )


@dataclass(eq=False)
class _Watch:
    deadline: float
    # A duplicate of the socket's descriptor, taken when armed and closed when disarmed:
    # the cut goes through it, so it never reaches another socket that reused the number
    # after the connection was closed (-1: none to cut).
    fd: int = -1
    fired: bool = False


class _Watchdog:
    """One daemon thread for the process, started with the first watch, asleep until the
    earliest deadline; cutting is `shutdown()` of the socket, so the read waiting on it
    ends at once. Armed and disarmed under one lock: a watch disarmed is never cut."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watches: set[_Watch] = set()
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf

    def forget_inherited(self) -> None:
        """In a forked child: the parent's watches are not the child's to cut."""
        for watch in self._watches:
            _close(watch)
        self._cond = threading.Condition()
        self._watches = set()
        self._thread = None
        self._wakes_at = math.inf

    def arm(self, sock: socket.socket, seconds: float) -> _Watch:
        watch = _Watch(time.monotonic() + seconds)
        with contextlib.suppress(OSError, ValueError):
            watch.fd = os.dup(sock.fileno())
        with self._cond:
            self._watches.add(watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="prometheus-watchdog", daemon=True
                )
                self._thread.start()
            if watch.deadline < self._wakes_at:
                self._cond.notify()
        return watch

    def disarm(self, watch: _Watch) -> bool:
        """Stop watching; whether the watchdog cut the connection."""
        with self._cond:
            self._watches.discard(watch)
            _close(watch)
            return watch.fired

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for watch in self._watches:
                    if watch.deadline <= now and not watch.fired:
                        watch.fired = True
                        _cut(watch.fd)
                waiting = [w.deadline for w in self._watches if not w.fired]
                self._wakes_at = min(waiting, default=math.inf)
                self._cond.wait(self._wakes_at - now if waiting else None)


def _cut(fd: int) -> None:
    """End the connection of socket `fd` (a watch's duplicate, left open for its owner)."""
    if fd < 0:
        return
    with contextlib.suppress(OSError, ValueError):
        sock = socket.socket(fileno=fd)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.detach()  # the descriptor stays the watch's, closed when disarmed


def _close(watch: _Watch) -> None:
    if watch.fd >= 0:
        with contextlib.suppress(OSError):
            os.close(watch.fd)
        watch.fd = -1


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.forget_inherited)
