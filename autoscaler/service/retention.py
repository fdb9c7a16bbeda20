"""How long the durable memory of a removed policy is kept, and dropping it after that.

Policies come and go all day (discovery, hot reloads), and a policy removed and added back
soon after (a reload that briefly lost its file, a discovery source flapping, a rename
back) must find its cooldown and stabilization windows again: what it reads from the
state store is what it had. So a removed policy's memory (and the last action of a
target no policy scales any more) is dropped only once it was last written more than
the retention ago: `RETENTION`, or longer when a policy loaded since the start has a
longer cooldown or stabilization window. Memory that old is past every window it
served: a policy that comes back then decides as it would have with it. (Forecasts and
the anomaly guard keep nothing there: they read their history back from Prometheus.)

The leader tidies at most once per `TIDY_EVERY`; each policy whose memory goes is named
in the log, so a policy that comes back without it can be explained.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Protocol

from autoscaler.adapters.state.schema import Dropped
from autoscaler.core.durations import format_duration
from autoscaler.core.model import Policy
from autoscaler.core.names import noun
from autoscaler.errors import NotLeader, StateError

log = logging.getLogger("autoscaler.state")

RETENTION = timedelta(days=7)
TIDY_EVERY = 3600.0  # seconds between two tidyings of the state store
NAMED = 20  # policies named one line each per tidying; the rest are counted


class Tidied(Protocol):
    """A state store that can drop what removed policies left (`drop_removed`)."""

    def drop_removed(
        self, policies: set[str], targets: set[str], *, before: datetime
    ) -> Dropped | None: ...


def longest_window(policy: Policy) -> timedelta:
    """The longest stretch `policy`'s durable memory serves: its cooldowns and windows."""
    return max(
        policy.cooldown.up,
        policy.cooldown.down,
        policy.stabilization.up,
        policy.stabilization.down,
    )


class Retention:
    """Tracks the policies loaded and drops the durable memory of removed ones in time."""

    def __init__(
        self,
        state: object,
        *,
        clock: Callable[[], datetime],
        keep: timedelta = RETENTION,
        every: float = TIDY_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        drop = getattr(state, "drop_removed", None)
        self._state: Tidied | None = state if drop is not None else None  # type: ignore[assignment]
        self._clock = clock
        self._keep = keep
        self._every = every
        self._monotonic = monotonic
        self._longest = timedelta(0)  # of every policy loaded since the start
        self._policies: set[str] = set()
        self._targets: set[str] = set()
        self._loaded = False
        self._next = 0.0
        self._failing = False

    @property
    def period(self) -> timedelta:
        """How long a removed policy's memory is kept after it was last written."""
        return max(self._keep, self._longest)

    def loaded(
        self,
        policies: Iterable[Policy],
        names: set[str] | None = None,
        targets: set[str] | None = None,
    ) -> None:
        """The policies in force now (all of them, disabled ones too: they keep theirs);
        `names` and `targets` (their target keys), when the caller has them already."""
        policies = list(policies)
        self._policies = {p.name for p in policies} if names is None else names
        self._targets = {p.target.key for p in policies} if targets is None else targets
        self._longest = max([self._longest, *(longest_window(p) for p in policies)])
        self._loaded = True

    def tidy(self, *, force: bool = False) -> Dropped | None:
        """Drop what removed policies left in the state store long enough ago, if a
        tidying is due (or `force`); None when nothing was tried. Never raises: a store
        that cannot be written now is tidied at a later turn."""
        now = self._monotonic()
        if self._state is None or not self._loaded or (now < self._next and not force):
            return None
        self._next = now + self._every
        period = self.period
        try:
            dropped = self._state.drop_removed(  # (read only: replaced, never changed)
                self._policies, self._targets, before=self._clock() - period
            )
        except NotLeader:
            return None  # the leader tidies
        except StateError as exc:
            if not self._failing:
                log.warning("state: could not drop the memory of removed policies: %s", exc)
            self._failing = True
            return None
        self._failing = False
        if dropped is not None:
            _say(dropped, format_duration(period))
        return dropped


def _say(dropped: Dropped, period: str) -> None:
    for name, at in dropped.policies[:NAMED]:
        log.info(
            "state: dropped the memory of removed policy %r (last written %s, more than %s "
            "ago: past its cooldowns and stabilization windows)",
            name,
            at.isoformat(),
            period,
        )
    more = len(dropped.policies) - NAMED
    parts = []
    if more > 0:
        parts.append(f"the memory of {more} more removed {noun(more, 'policy', 'policies')}")
    if dropped.targets:
        targets = noun(dropped.targets, "target")
        parts.append(f"the last action of {dropped.targets} {targets} no policy scales")
    if parts:
        log.info("state: dropped %s, older than %s", " and ".join(parts), period)
