"""Lanes: threads of their own for the blocking work of the API's `async` routes.

FastAPI runs every plain `def` route (and `def` dependency) in one shared pool of 40
threads. A request that holds a thread while it waits (an evaluation queued behind
busy scheduler workers holds one up to 60 s) made every other such request queue
behind it: about 40 waiting `POST .../evaluate` calls stalled `/healthz`, `/readyz` and
the Alertmanager webhook for tens of seconds. So the routes that must stay responsive
are `async`, and what they do that blocks runs in a `Lane`: at most `threads` at a time,
on anyio's worker threads (the very ones FastAPI uses, daemons that never hold up the
process's exit) counted apart from that shared pool. A lane with a `limit` refuses
(`ServiceBusy`, 503 with `Retry-After`) a call when that many are already running or
waiting, rather than letting its queue grow without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from autoscaler.errors import ServiceBusy

T = TypeVar("T")


class Lane:
    """Runs blocking calls for `async` routes on at most `threads` threads of its own.

    Used from the event loop only (its count needs no lock); the limiter is made on the
    first call, inside the loop, as anyio wants.
    """

    def __init__(
        self, what: str, *, threads: int, limit: int | None = None, retry_after: int = 1
    ) -> None:
        self.what = what
        self.threads = threads
        self.limit = limit
        self.retry_after = retry_after
        self.in_flight = 0  # running or waiting for a thread
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def full(self) -> bool:
        """Whether a call now would be refused (`ServiceBusy`)."""
        return self.limit is not None and self.in_flight >= self.limit

    async def run(self, call: Callable[[], T]) -> T:
        """`call()` on one of the lane's threads; `ServiceBusy` when the lane is full."""
        if self.full:
            raise ServiceBusy(
                f"{self.in_flight} {self.what} are under way already (at most {self.limit}); "
                f"try again in {self.retry_after} s",
                retry_after=self.retry_after,
            )
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        self.in_flight += 1
        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)
        finally:
            self.in_flight -= 1
