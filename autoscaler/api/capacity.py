"""How many connections the API holds open at once, and which give way when it is full.

Each connection costs a file descriptor, and the process shares its limit (`ulimit -n`,
1024 under systemd) with its Prometheus, AWS, Nomad and state connections. Two thousand
connections opened at once took every descriptor for the 10 s the request timeout gives
them: `/healthz` and `/metrics` went unanswered, evaluations held with EMFILE, the policy
files could not be read, and asyncio logged a traceback per refused accept (66,000 lines
in 10 s). So the server holds `limit` connections at most. When one more comes, the
connection idle the longest (none of its request under way: opened and silent, trickling
its head, or kept alive after an answer) is closed to make room: a flood of idle
connections then costs health checks nothing, as they send their request at once. With
none idle, the oldest connection whose request's body is still coming is closed (answered
408): bodies trickled a byte at a time would otherwise hold every place for the 30 s the
body timeout gives them. With none of those either, the oldest connection whose client
has received nothing of the answer waiting for it for `STALL_AFTER` s is closed: clients
that ask for `/metrics` and never read would otherwise hold every place, each with an
answer that can never be sent (a client reading, however slowly, is not closed for
this). Only when every connection has a request being handled (its body all in, its
answer not stuck on its client) is the new one answered 503 and closed.

The server also closes a connection whose client read nothing of its answer for
`SEND_TIMEOUT` s, limit reached or not (`send_timed_out`): its file descriptor and the
answer it holds in memory (megabytes, for `/metrics`) would otherwise be held for as long
as the client keeps the connection open. What a client received is measured in
`delivery`.
"""

from __future__ import annotations

import logging
import resource
import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

from autoscaler.api.client_log import Throttled
from autoscaler.config.service import API_MAX_CONNECTIONS
from autoscaler.core.names import counted

log = logging.getLogger("autoscaler.http")

C = TypeVar("C", bound=Hashable)

# Connections the kernel queues before they are accepted (also what one loop turn accepts
# at most, before the limit is looked at): uvicorn's 2048 let one turn pass 1024.
BACKLOG = 128
# File descriptors to leave to the rest of the service (its Prometheus, AWS, Nomad and
# state connections, files, the event loop's own): a limit that leaves fewer is warned of.
OWN_FILES = 256
# Seconds a refused connection is kept, half-closed, for its client to read the 503; and
# how many are kept so at once (more are closed at once: their client may see a reset).
LINGER = 1.0
LINGER_MAX = 64
# Seconds a connection may go with an answer waiting to be sent and none of it read by its
# client (nginx's `send_timeout`, 60 s by default, is the same rule): then it is closed.
SEND_TIMEOUT = 60.0
# Seconds a connection's client may receive nothing of an answer waiting for it before the
# connection may be closed to make room for a new one (`Capacity.stalled`); also how often
# what a client received is looked at.
STALL_AFTER = 5.0
# Seconds after an answer begins to wait in the transport's buffer before what its client
# received is first looked at: what was on its way by then has arrived (the kernel's queue
# counts it unreceived when written), and is no sign that the client reads.
SETTLE = 0.5

REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
)


def refusal(limit: int) -> bytes:
    """The 503 answer sent (before its request is read) to a connection over the limit."""
    body = (
        f'{{"detail":"the API holds {limit} connections, each with a request being handled '
        '(--api-max-connections); try again in 1 s"}'
    ).encode()
    return REFUSED + b"content-length: %d\r\n\r\n" % len(body) + body


def check_fits(limit: int) -> None:
    """Warn when `limit` connections (with those the backlog lets in at once, and the
    refused ones kept to read their 503) leave fewer than `OWN_FILES` of the process's
    file descriptors (`ulimit -n`) to the rest of the service: then the limit does not
    keep a flood from taking them all."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    most = limit + BACKLOG + LINGER_MAX
    if soft == resource.RLIM_INFINITY or most + OWN_FILES <= soft:
        return
    log.warning(
        "--api-max-connections %d lets the HTTP API hold up to %d file descriptors, leaving "
        "fewer than %d of the process's %d (ulimit -n) to its connections to Prometheus, "
        "AWS, Nomad and the state database: a flood of connections could take them. Lower "
        "--api-max-connections, or raise the limit (systemd: LimitNOFILE=)",
        limit,
        most,
        OWN_FILES,
        soft,
    )


class Capacity(Generic[C]):
    """The connections of one server: which are open, which idle and which still receiving
    their request's body (each oldest first), and what the limit made it do (`counts`).
    Used from the server's event loop only, but for `counts`, which `/metrics` reads from
    its thread, and the log's timer."""

    def __init__(self, limit: int = API_MAX_CONNECTIONS) -> None:
        self.limit = limit
        self._open: set[C] = set()
        self._idle: dict[C, None] = {}  # insertion order: the longest idle first
        self._receiving: dict[C, None] = {}  # a request's body still coming: the oldest first
        self._stalled: dict[C, None] = {}  # an answer its client does not read: the oldest first
        self._lingering: set[C] = set()  # refused, kept for their client to read the 503
        self._counts = {"closed_idle": 0, "closed_receiving": 0, "closed_stalled": 0, "refused": 0}
        self._send_timeouts = 0
        self._lock = threading.Lock()
        self._log = Throttled(self._report)
        self._send_log = Throttled(self._report_send_timeouts)

    def counts(self) -> dict[str, int]:
        """Connections closed to make room, idle (`closed_idle`), with a request whose
        body was still coming (`closed_receiving`) or with an answer their client did not
        read (`closed_stalled`), and refused with 503 (`refused`)."""
        with self._lock:
            return dict(self._counts)

    def send_timeouts(self) -> int:
        """Connections closed because their client read nothing of an answer for
        `SEND_TIMEOUT` s (`send_timed_out`)."""
        with self._lock:
            return self._send_timeouts

    def opened(self, connection: C) -> C | None:
        """Count a new connection in (idle). Returns the connection to close to make room
        for it (the longest idle, else the oldest receiving a body, else the oldest whose
        client does not read its answer), `connection` itself when every other one has a
        request being handled (refuse it), or None when there is room."""
        self._open.add(connection)
        self._idle[connection] = None
        if len(self._open) <= self.limit:
            return None
        victim = next((c for c in self._idle if c is not connection), None)
        what = "closed_idle"
        if victim is None and self._receiving:
            victim, what = next(iter(self._receiving)), "closed_receiving"
        if victim is None:
            victim = next(iter(self._stalled), connection)
            what = "refused" if victim is connection else "closed_stalled"
        self.closed(victim)
        self._count(what)
        return victim

    def idle(self, connection: C) -> None:
        """`connection` has no request under way now (it goes last in the eviction order)."""
        if connection in self._open:
            self._receiving.pop(connection, None)
            self._stalled.pop(connection, None)
            self._idle.pop(connection, None)
            self._idle[connection] = None

    def receiving(self, connection: C) -> None:
        """`connection` has a request whose body is still coming: it is closed to make room
        only when none is idle (the oldest first)."""
        if connection in self._open:
            self._idle.pop(connection, None)
            self._receiving.setdefault(connection, None)

    def busy(self, connection: C) -> None:
        """`connection` has a request being handled (its body all in): it is not closed to
        make room (unless its client stops reading the answer: `stalled`)."""
        self._idle.pop(connection, None)
        self._receiving.pop(connection, None)

    def stalled(self, connection: C) -> None:
        """The client of `connection` has received nothing of an answer waiting for it for
        `STALL_AFTER` s: closed to make room only when none is idle or receiving a body
        (the oldest first). An idle one stays idle."""
        if connection in self._open and connection not in self._idle:
            self._receiving.pop(connection, None)
            self._stalled.setdefault(connection, None)

    def flowing(self, connection: C) -> None:
        """The client of `connection` received some of its answer: no longer `stalled`."""
        self._stalled.pop(connection, None)

    def send_timed_out(self, connection: C, unsent: int) -> None:
        """`connection` is being closed because its client read nothing of an answer for
        `SEND_TIMEOUT` s, with `unsent` bytes of it left: counted and logged."""
        self.closed(connection)
        with self._lock:
            self._send_timeouts += 1
        if self._send_log.note():
            log.warning(
                "closed a connection to the HTTP API whose client read nothing of its answer "
                "for %g s (%s left unsent): it held a file descriptor and the answer in "
                "memory. More in the next %g s are counted, and logged as one line",
                SEND_TIMEOUT,
                counted(unsent, "byte"),
                self._send_log.interval,
            )

    def linger(self, connection: C) -> bool:
        """Whether the refused `connection` may be kept open a moment (`LINGER_MAX`)."""
        if len(self._lingering) >= LINGER_MAX:
            return False
        self._lingering.add(connection)
        return True

    def closed(self, connection: C) -> None:
        """`connection` is closed (or being closed): it no longer counts."""
        self._open.discard(connection)
        self._idle.pop(connection, None)
        self._receiving.pop(connection, None)
        self._stalled.pop(connection, None)

    def lost(self, connection: C) -> None:
        """`connection` is gone (its descriptor too)."""
        self.closed(connection)
        self._lingering.discard(connection)

    def flush(self) -> None:
        """Log the connections closed or refused since the last line (the server's stop)."""
        self._log.flush()
        self._send_log.flush()

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1
        if self._log.note():
            log.warning(
                "the HTTP API holds %d connections, its limit (--api-max-connections): one "
                "more was %s (the longest idle is closed for a new one, else the oldest "
                "still sending its request's body, answered 408, else the oldest whose "
                "client received nothing of its answer for %g s; with a request being "
                "handled on each, the new one gets 503). More in the next %g s are counted, "
                "and logged as one line",
                self.limit,
                _DONE[what],
                STALL_AFTER,
                self._log.interval,
            )

    def _report(self, count: int, seconds: int) -> None:
        log.warning(
            "the HTTP API holds %d connections, its limit (--api-max-connections): %s "
            "closed or refused in the last %d s, not logged one by one",
            self.limit,
            counted(count, "connection"),
            seconds,
            extra={"count": count, "seconds": seconds},
        )

    def _report_send_timeouts(self, count: int, seconds: int) -> None:
        log.warning(
            "closed %s to the HTTP API in the last %d s whose client read nothing of its "
            "answer for %g s, not logged one by one",
            counted(count, "connection"),
            seconds,
            SEND_TIMEOUT,
            extra={"count": count, "seconds": seconds},
        )


_DONE = {
    "closed_idle": "closed, the longest idle",
    "closed_receiving": "closed, the oldest still sending its request's body (answered 408)",
    "closed_stalled": "closed, none idle or sending a body: the oldest whose client received "
    "nothing of its answer lately",
    "refused": "refused (503), every one having a request being handled",
}
