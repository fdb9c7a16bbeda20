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
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor

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
    ) -> None:
        """`scope`: the namespaces the list was asked for (`*`: those `visible()` gives, the
        namespaces the token sees; None when they could not be read); `probe(namespace)`
        asks one namespace."""
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
            due = not self._running and started - self._checked >= every
            if due:
                self._running, self._asking = True, None
                listed, found = self._listed, self._found
        if due:
            done = threading.Event()
            threading.Thread(
                target=self._round,
                args=(started, listed, found, done),
                name=f"nomad audit {self._what}",
                daemon=True,
            ).start()
            if not done.wait(wait):
                self._not_yet(wait)
        with self._lock:
            return self._found

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
                with ThreadPoolExecutor(
                    PROBERS, thread_name_prefix=f"nomad audit {self._what}"
                ) as pool:
                    answers = list(pool.map(self._probe, asked))
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
