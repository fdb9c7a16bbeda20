"""A `MetricSource` wrapper that sends identical queries due at the same moment only once.

Many policies often share a query (the same latency or queue depth seen by several
targets), and the scheduler starts them together after a restart or a reload. Two
mechanisms keep Prometheus from answering the same question twice:

- single flight: while a query string is in flight, other callers wait for its answer;
- short reuse: an answer (value or error) is handed out again until `reuse` seconds
  (1 s by default) after its query was sent, which covers callers that arrive just after
  the flight landed.

The reuse window is deliberately far shorter than any policy interval. An evaluation that
was *triggered* (an alert, the API) wants data newer than its trigger, whatever the window:
it runs inside `fresh_since(trigger_time)` and neither reuses nor joins an older query.

Grouped queries (`query_series`, a template's one query for all its targets) follow the
same two rules, with the reuse window the caller gives (the policies' interval) and
`fresh_since` set by the scheduler to the tick the evaluation runs in: the targets of one
tick, evaluated one after the other, all read the one answer, and the next tick sends the
query again. The answer is parsed once; every target picks its series from the same
`SeriesSet`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from autoscaler.core.ports import MetricSource
from autoscaler.core.series import SeriesSet, sharing

T = TypeVar("T")
FETCHERS = 4  # threads fetching grouped answers, at most (one per query in flight)

# Queries sent before this moment (the source's clock) may not answer the current context.
_fresh_since: ContextVar[float | None] = ContextVar("fresh_since", default=None)


@contextmanager
def fresh_since(moment: float | None) -> Iterator[None]:
    """Within the block, only answers to queries sent at or after `moment` are used."""
    token = _fresh_since.set(moment)
    try:
        yield
    finally:
        _fresh_since.reset(token)


@dataclass
class _Flight(Generic[T]):
    """One query sent to the inner source, its outcome once it lands, kept for reuse
    until `keep_until` (the source's clock)."""

    sent: float
    keep_until: float
    done: threading.Event = field(default_factory=threading.Event)
    value: T | None = None
    error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


class _Flights(Generic[T]):
    """Single flight and short reuse for one kind of query (instant, grouped).

    `sent` and `shared` count its queries sent and answered from another's flight. `ask`
    holds the lock it is given around the bookkeeping, never while a query is in flight.
    """

    def __init__(
        self,
        lock: threading.Lock,
        clock: Callable[[], float],
        merge: Callable[[T, T], T] | None = None,
        run: Callable[[Callable[[], T]], T] | None = None,
    ) -> None:
        """`merge(previous, new)`, if given, is what a new answer becomes, given the
        previous answer to the same query (see `_previous`); `run(fetch)` runs the fetch of
        an answer (and its merge) and returns what it gives (default: in the caller)."""
        self._lock = lock
        self._clock = clock
        self._merge = merge
        self._run = run
        self._flying: dict[str, _Flight[T]] = {}
        self._landed: dict[str, _Flight[T]] = {}
        # The last answer to each query, for `merge` only (never handed out as such): kept
        # until two of its windows have passed, since `_landed` may drop it just before
        # the next tick asks again.
        self._previous: dict[str, _Flight[T]] = {}
        self.sent = 0
        self.shared = 0

    def ask(self, promql: str, window: float, send: Callable[[], T]) -> T:
        """`send()`'s answer for `promql`, or that of an identical query in flight or sent
        at most `window` seconds ago (and not before the context's `fresh_since`)."""
        with self._lock:
            now = self._clock()
            for query in [q for q, f in self._landed.items() if f.keep_until < now]:
                del self._landed[query]
            for query in [q for q, f in self._previous.items() if 2 * f.keep_until - f.sent < now]:
                del self._previous[query]
            fresh = _fresh_since.get()
            landed, flying = self._landed.get(promql), self._flying.get(promql)
            flight: _Flight[T] | None = None
            if landed is not None and landed.sent >= max(now - window, fresh or 0.0):
                flight = landed
            elif flying is not None and (fresh is None or flying.sent >= fresh):
                flight = flying
            leader = flight is None
            if flight is None:
                flight = self._flying[promql] = _Flight(sent=now, keep_until=now + window)
                self.sent += 1
            else:
                self.shared += 1
        if not leader:
            flight.done.wait()
            return flight.outcome()
        try:

            def fetch() -> T:
                return self._merged(promql, send())

            flight.value = fetch() if self._run is None else self._run(fetch)
        except BaseException as exc:
            flight.error = exc
        finally:
            with self._lock:
                if self._flying.get(promql) is flight:
                    del self._flying[promql]
                landed = self._landed.get(promql)
                if landed is None or landed.sent <= flight.sent:
                    self._landed[promql] = flight
                previous = self._previous.get(promql)
                newer = previous is None or previous.sent <= flight.sent
                if self._merge is not None and flight.error is None and newer:
                    self._previous[promql] = flight
            flight.done.set()
        return flight.outcome()

    def _merged(self, promql: str, value: T) -> T:
        """`value` merged with the previous answer to `promql` (when there is a merge)."""
        if self._merge is None:
            return value
        with self._lock:
            previous = self._previous.get(promql)
        if previous is None or previous.value is None:
            return value
        return self._merge(previous.value, value)


class CoalescingSource:
    """`ports.MetricSource` that coalesces identical queries (single flight + short reuse).

    `sent` counts queries passed to the inner source, `shared` those answered from a
    flight or a reused answer; telemetry exports both.
    """

    def __init__(
        self,
        inner: MetricSource,
        *,
        reuse: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._reuse = reuse
        lock = threading.Lock()
        self._values: _Flights[float] = _Flights(lock, clock)
        # Grouped answers are fetched and parsed by threads of their own (usually one: a
        # thread is added only while another grouped query is in flight). Fetched by
        # whichever evaluation worker came first, the megabyte-sized buffers of each
        # answer (the body, its text, the lists of 10,000 series) were left in the
        # allocator's arena of each worker in turn (measured: 2.4 MB at 10,000 targets).
        self._grouped = ThreadPoolExecutor(FETCHERS, thread_name_prefix="grouped query")
        self._series: _Flights[SeriesSet] = _Flights(
            lock, clock, sharing, lambda fetch: self._grouped.submit(fetch).result()
        )

    def __repr__(self) -> str:
        return f"CoalescingSource({self._inner!r}, reuse={self._reuse:g})"

    @property
    def sent(self) -> int:
        return self._values.sent + self._series.sent

    @property
    def shared(self) -> int:
        return self._values.shared + self._series.shared

    def query(self, promql: str) -> float:
        """The inner source's answer to `promql`, shared with identical concurrent calls."""
        return self._values.ask(promql, self._reuse, lambda: self._inner.query(promql))

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        """The inner source's series for `promql`, shared with identical calls in flight and
        reused while sent at most `max(reuse, the source's own window)` seconds ago."""
        window = max(reuse, self._reuse)
        return self._series.ask(
            promql, window, lambda: self._inner.query_series(promql, reuse=reuse)
        )

    def ping(self) -> None:
        """Ask the inner source directly: readiness must see the source as it is now."""
        self._inner.ping()

    def close(self) -> None:
        """Close the inner source when it has something to release."""
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()
