"""Cuts the connection of a call still waiting on a socket past its own deadline.

A socket's timeout bounds each wait for it, not the call: a server that holds the
connection but never answers (PostgreSQL stopped or frozen, whose kernel still
acknowledges every byte) or one that answers a few bytes at a time (Prometheus behind a
congested link) keeps a call going for as long as it likes. The state store
(`state.pg`) and the Prometheus source (`sources.prometheus_watchdog`) each bound their
calls with a `SocketWatchdog` of their own, named for its thread: the owner of a
connection arms a watch before the call and disarms it after; a call still going at the
deadline has its socket shut down, so it ends at once with an error its owner turns into
one that says why.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from dataclasses import dataclass

__all__ = ["SocketWatchdog", "Watch"]


@dataclass(eq=False)
class Watch:
    """One call watched: its owner (what it is keyed by), its length and deadline."""

    owner: object
    seconds: float
    deadline: float
    # A duplicate of the owner's socket descriptor, taken when armed and closed when
    # disarmed: the watchdog cuts through it, so it can never reach another socket that
    # reused the descriptor's number after the owner closed its own (-1: none to cut).
    fd: int = -1
    fired: bool = False


class SocketWatchdog:
    """Cuts the socket of a watch still armed past its deadline.

    One daemon thread a watchdog, named `name` (`postgres-watchdog`,
    `prometheus-watchdog`: what a thread dump shows), started with the first watch, asleep
    until the earliest deadline. Cutting is `shutdown()` of the socket through the watch's
    duplicate descriptor: the call waiting on it sees the connection end, and its owner
    learns from `disarm` that it was cut. Watches are armed and disarmed under one lock, so
    a socket is never cut once its watch has been disarmed. A forked child forgets the
    parent's watches (`forget_inherited`, registered at fork for every watchdog).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._watches: dict[int, Watch] = {}  # by id of the owner
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf  # when the thread wakes next (inf: when notified)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.forget_inherited)

    def forget_inherited(self) -> None:
        """In a forked child: drop the parent's watches, closing the child's copies of
        their duplicates. Their sockets are the parent's connections too: cut from here,
        the parent's call would fail, and the child's thread would cut them once their
        deadline passed, whatever the parent did. A fresh lock, as the parent's may have
        been held by one of its threads at the fork."""
        for watch in self._watches.values():
            _close(watch)
        self._cond = threading.Condition()
        self._watches = {}
        self._thread = None
        self._wakes_at = math.inf

    def arm(self, owner: object, fileno: int, seconds: float) -> Watch:
        """Watch `owner`'s call on socket descriptor `fileno` (-1: none, nothing is cut):
        cut it `seconds` from now unless disarmed (or restarted) before. Arming the same
        owner again replaces its watch."""
        watch = Watch(owner, seconds, time.monotonic() + seconds)
        with contextlib.suppress(OSError, ValueError):
            watch.fd = os.dup(fileno)
        with self._cond:
            self._watches[id(owner)] = watch
            # None at first and in a forked child (`forget_inherited`); not alive if it died.
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            # Woken only when it would sleep past this deadline: not once per call (a
            # thousand a second at 10,000 policies) when earlier deadlines wake it anyway.
            if watch.deadline < self._wakes_at:
                self._cond.notify()
        return watch

    def restart(self, owner: object) -> None:
        """`owner` sends a new request on its socket: its deadline counts from now (if
        armed and not cut yet)."""
        with self._cond:
            watch = self._watches.get(id(owner))
            if watch is not None and watch.owner is owner and not watch.fired:
                watch.deadline = time.monotonic() + watch.seconds

    def disarm(self, watch: Watch) -> bool:
        """Stop watching (again: a no-op); whether the watchdog cut the connection."""
        with self._cond:
            if self._watches.get(id(watch.owner)) is watch:
                del self._watches[id(watch.owner)]
            _close(watch)
            return watch.fired

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                due = [w for w in self._watches.values() if w.deadline <= now and not w.fired]
                for watch in due:
                    watch.fired = True
                    _cut(watch.fd)
                waiting = [w.deadline for w in self._watches.values() if not w.fired]
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


def _close(watch: Watch) -> None:
    if watch.fd >= 0:
        with contextlib.suppress(OSError):
            os.close(watch.fd)
        watch.fd = -1
