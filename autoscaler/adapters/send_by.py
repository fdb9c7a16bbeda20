"""HTTP connections that write no request at or after the caller's deadline.

A target checks its caller's deadline (under `--ha`, where the leader lease's validity
ends) before each attempt of a scale request, and cuts the attempt's timeouts to the time
left (`adapters.deadline`). That still let a request out late: after that check the HTTP
client may first have to open a connection, and nothing bounds that by the deadline. The
host lookup has no timeout at all, and the connect timeout bounds each address tried and
each step of a TLS handshake, not their sum (botocore's is not even cut to the time left).
A scale request whose connection opened after the lease had ended was written all the
same, when another replica may already have been leading.

So the connections of the targets' HTTP clients (botocore's for AWS, requests' for Nomad:
both urllib3) check the deadline of the request they carry at the last moment. The
target sets it around the call (`sending_by`), in the thread that sends it. Under it, a
connection is not opened at or after the deadline and waits no longer than the time left
to open; once open, not a byte of the request is written at or after the deadline. The
refusal is `TargetDeadline`, raised through the HTTP client (botocore wraps it: `refusal`
finds it). Requests sent without a deadline are untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from autoscaler.adapters.deadline import monotonic
from autoscaler.errors import TargetDeadline

__all__ = ["SendBy", "checked_pools", "deadline", "refusal", "sending_by"]

# The caller's deadline (an instant of `deadline.monotonic()`) of the request this thread
# is sending; None: no deadline but the client's own timeouts.
_deadline: ContextVar[float | None] = ContextVar("autoscaler_send_by", default=None)


@contextmanager
def sending_by(until: float | None) -> Iterator[None]:
    """Requests sent by this thread within the block are written before `until` or not at all."""
    token = _deadline.set(until)
    try:
        yield
    finally:
        _deadline.reset(token)


def deadline() -> float | None:
    """The deadline of the request this thread is sending (`sending_by`), if any."""
    return _deadline.get()


def refusal(exc: BaseException) -> TargetDeadline | None:
    """The `TargetDeadline` a connection refused a request with, if `exc` is or wraps it
    (botocore raises its own error while handling it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TargetDeadline):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _not_sent(what: str) -> TargetDeadline:
    return TargetDeadline(f"the request was not sent: the caller's deadline came {what}")


class SendBy(HTTPConnection):
    """A urllib3 connection (mixed in first) that checks the deadline of `sending_by`."""

    def connect(self) -> None:
        until = _deadline.get()
        if until is not None:
            left = until - monotonic()
            if left <= 0:
                raise _not_sent("before its connection was opened")
            own = self.timeout if isinstance(self.timeout, int | float) else left
            self.timeout = max(0.001, min(own, left))
        super().connect()

    def send(self, data: Any) -> None:
        until = _deadline.get()
        if until is not None:
            if self.sock is None:  # plain HTTP opens the connection with its first write
                self.connect()
            if until - monotonic() <= 0:
                raise _not_sent("while its connection was opened")
        super().send(data)


def checked_pools(
    pools: Mapping[str, type[HTTPConnectionPool]],
) -> dict[str, type[HTTPConnectionPool]]:
    """`pools` (a urllib3 PoolManager's `pool_classes_by_scheme`), each making `SendBy`
    connections of the kind it made."""
    return {scheme: _checked(pool) for scheme, pool in pools.items()}


_made: dict[type[HTTPConnectionPool], type[HTTPConnectionPool]] = {}  # one per pool class
_made_lock = threading.Lock()


def _checked(pool: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    connection = pool.ConnectionCls
    if issubclass(connection, SendBy):
        return pool
    with _made_lock:
        made = _made.get(pool)
        if made is None:
            checked = type(f"SendBy{connection.__name__}", (SendBy, connection), {})
            made = _made[pool] = type(f"SendBy{pool.__name__}", (pool,), {"ConnectionCls": checked})
        return made
