"""The check of which namespaces a list of every namespace left out, made beside the watch.

A list of every namespace (`namespace=*`) holds only the namespaces where the token may
list; the check asks each namespace the token sees that the list showed nothing of (see
`NomadDiscovery._audit`). Made inline, one probe after the other, it held the watcher that
follows Nomad's blocking queries for as long as it took: with many namespaces, or a Nomad
slow to answer (each probe may wait for its timeout, and retries), a job opted in or
removed meanwhile was seen that much later. So a round of the check runs in a thread of
its own, `PROBERS` probes at once, and the listing that started it waits for it a bounded
time only (`wait`; a read made once, as `plan`'s, waits for all of it): past that, the
listing gives the last finding, says so, and the round's own comes with the first listing
after it ends. One round at most is under way per list.

Its threads are daemon threads that each take the next namespace (not a
`ThreadPoolExecutor`'s, which the interpreter joins at exit after running every probe
queued: a round against a Nomad slow to answer held the process for a minute after the
service had stopped), and `close()` ends the round at the probes in flight.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Sequence

log = logging.getLogger(__name__)

PROBERS = 8  # namespaces asked at once

# A probe's answer: True when the token may not list there (403), False when it may, None
# when Nomad did not answer (what was found last stands).
Probe = Callable[[str], bool | None]


class NamespaceAudit:
    """The rounds of the check for one list (`what`: "jobs" or "scaling policies")."""

    def __init__(
        self,
        what: str,
        *,
        scope: Collection[str],
        visible: Callable[[], set[str] | None],
        probe: Probe,
        stop: threading.Event | None = None,
    ) -> None:
        """`scope`: the namespaces the list was asked for (`*`: those `visible()` gives, the
        namespaces the token sees; None when they could not be read); `probe(namespace)`
        asks one namespace; `stop`, once set (`close`), starts no round and no probe."""
        self._what = what
        self._scope = frozenset(scope)
        self._visible = visible
        self._probe = probe
        self._lock = threading.Lock()
        self._listed: frozenset[str] = frozenset()  # namespaces the last list showed
        self._checked = -math.inf  # when the last round that ended started
        self._found: tuple[str, ...] = ()  # what it found
        self._asking: int | None = None  # namespaces the round under way asks (once known)
        self._running = False
        self._unstartable = False  # the last round's thread could not start (warned once)
        self._stop = stop if stop is not None else threading.Event()

    def close(self) -> None:
        """Start no round, and no probe of the round under way (those in flight end within
        their request's timeout, in daemon threads that do not hold the process's exit)."""
        self._stop.set()

    def finding(
        self, seen: Collection[str] | None, *, every: float, wait: float | None
    ) -> tuple[str, ...]:
        """The namespaces the list leaves out as last found, after a round started now if
        one is due (`every` seconds after the last one started), waited for `wait` seconds
        at most (None: until it ends).

        `seen`: the namespaces the list just showed entries of (None: not decoded, the last
        one's stand); a namespace that showed entries needs no asking."""
        started = time.monotonic()
        with self._lock:
            if seen is not None:
                self._listed = frozenset(seen)
            due = not self._running and not self._stop.is_set() and started - self._checked >= every
            if due:
                self._running, self._asking = True, None
                listed, found = self._listed, self._found
        if due:
            done = threading.Event()
            thread = threading.Thread(
                target=self._round,
                args=(started, listed, found, done),
                name=f"nomad audit {self._what}",
                daemon=True,
            )
            if self._started(thread) and not done.wait(wait):
                self._not_yet(wait)
        with self._lock:
            return self._found

    def _started(self, thread: threading.Thread) -> bool:
        """Whether the round's `thread` started. One that cannot (RuntimeError "can't start
        new thread", at a limit of processes or memory) leaves the last finding standing;
        the round is due again at the next listing: neither the listing fails nor do the
        checks stop for good. Logged once until a round starts again (then said so): the
        listings follow blocking queries, and a warning at each filled the log."""
        try:
            thread.start()
        except RuntimeError as exc:
            with self._lock:
                self._running = False
                first, self._unstartable = not self._unstartable, True
            if first:
                log.warning(
                    "cannot check where the token may not list %s (a list of every namespace "
                    "leaves those namespaces out): %s; the last finding stands, and the "
                    "check is tried again at each listing (not logged again until it starts)",
                    self._what,
                    exc,
                )
            return False
        with self._lock:
            again, self._unstartable = self._unstartable, False
        if again:
            log.info("the check where the token may not list %s runs again", self._what)
        return True

    def _not_yet(self, wait: float | None) -> None:
        with self._lock:
            asking = self._asking
        what = "the namespace list not answered yet"
        if asking is not None:
            what = f"{asking} namespace{'' if asking == 1 else 's'} to ask"
        log.info(
            "the namespaces a list of every namespace leaves out (the token may not list "
            "%s there) are not checked yet after %g s (%s): discovery goes on without "
            "waiting, and what the check finds comes with a later listing",
            self._what,
            wait,
            what,
        )

    def _round(
        self, started: float, listed: frozenset[str], found: tuple[str, ...], done: threading.Event
    ) -> None:
        """One round, in its own thread: every namespace to ask, `PROBERS` at once. A probe
        not answered keeps the last finding for its namespace; so does the whole round when
        the namespace list is not answered, or something unforeseen breaks it (logged)."""
        lacking = found
        try:
            wanted = self._visible() if "*" in self._scope else set(self._scope)
            if wanted is not None:
                asked = sorted(wanted - listed)
                with self._lock:
                    self._asking = len(asked)
                answers = self._ask(asked)
                lacking = tuple(
                    namespace
                    for namespace, answer in zip(asked, answers, strict=True)
                    if answer or (answer is None and namespace in found)
                )
        except Exception:  # a bug must not end the checks: the last finding stands
            log.exception("checking where the token may not list %s failed", self._what)
        finally:
            with self._lock:
                self._checked, self._found, self._running = started, lacking, False
            done.set()

    def _ask(self, namespaces: Sequence[str]) -> list[bool | None]:
        """The probes' answers for `namespaces`, `PROBERS` at once, each thread taking the
        next namespace; None for a namespace not asked because `close()` came first.

        A probe's unforeseen failure is raised once the probes in flight have ended (none
        starts after it), as is the RuntimeError of a thread that cannot start when none
        could (with fewer, the round is only slower)."""
        answers: list[bool | None] = [None] * len(namespaces)
        failures: list[Exception] = []
        pending = iter(range(len(namespaces)))
        lock = threading.Lock()

        def prober() -> None:
            while not self._stop.is_set():
                with lock:
                    position = None if failures else next(pending, None)
                if position is None:
                    return
                try:
                    answers[position] = self._probe(namespaces[position])
                except Exception as exc:  # raised below, in the round's thread
                    with lock:
                        failures.append(exc)

        threads: list[threading.Thread] = []
        for i in range(min(PROBERS, len(namespaces))):
            thread = threading.Thread(
                target=prober, name=f"nomad audit {self._what} {i}", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:
                if not threads:
                    raise
                break
            threads.append(thread)
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        return answers
