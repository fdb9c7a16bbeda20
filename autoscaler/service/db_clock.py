"""The database's time carried forward by this host's monotonic clock: the service's wall
clock under `run --ha` (cooldowns, stabilization windows, decision times), so replicas with
skewed clocks read one another's cooldowns right.

Each lease round trip gives an anchor: the database's time and the local instant it was
read at. That instant is only known within half the round trip's network time (the
database's own wait on the lease row's lock, which it reports, is taken out). A slow round
trip (a lock wait the database could not report, a slow network) is a poor anchor: taken
as it came it pulled the clock back by up to half the wait, and the clock, which never goes
back, stood still that long. So an anchor is taken only when it is about as precise as the
one it replaces (`DRIFT`, `TOLERANCE`), and the clock moves on by at least a microsecond
from one reading to the next: two evaluations never get the same instant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# How fast an anchor's error may grow with its age, for the local clock's rate against the
# database's (a thousandth: ten times the worst crystal's error), and the error any anchor
# may have and still be taken (seconds): finer than that does not matter to a cooldown.
DRIFT = 1e-3
TOLERANCE = 0.05
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class _Anchor:
    db_time: datetime
    local: float  # the local instant `db_time` was read at (the monotonic clock)
    error: float  # how far off `local` may be (seconds)


class DatabaseClock:
    """The database's time now, from anchors given by `anchor()`; the local wall clock
    until the first one. Thread-safe."""

    def __init__(self, mono: Callable[[], float]) -> None:
        self._mono = mono
        self._lock = threading.Lock()
        self._anchor: _Anchor | None = None
        self._last: datetime | None = None

    def anchor(self, db_time: datetime, *, sent: float, received: float, waited: float) -> bool:
        """Take `db_time`, read by a statement sent at `sent` and answered at `received`
        (the local monotonic clock) after the database had spent `waited` seconds on it
        (waiting for a lock) before reading it. False when it is ignored: it is less
        precise than the anchor kept, beyond what that one's age allows."""
        network = max(0.0, received - sent - waited)
        new = _Anchor(db_time=db_time, local=received - network / 2, error=network / 2)
        with self._lock:
            kept = self._anchor
            if kept is not None:
                allowed = max(TOLERANCE, kept.error + DRIFT * max(0.0, new.local - kept.local))
                if new.error > allowed:
                    return False
            self._anchor = new
            return True

    def now(self) -> datetime:
        """The database's time now: never going back, never the same twice (a reading at
        or before the last one is a microsecond after it). Before the first anchor, the
        local time, not kept as a floor: were the database's clock behind this host's,
        every time after would stand still at it for the whole difference."""
        with self._lock:
            anchor = self._anchor
            if anchor is None:
                return datetime.now(UTC)
            now = anchor.db_time + timedelta(seconds=self._mono() - anchor.local)
            if self._last is not None and now <= self._last:
                now = self._last + _TICK
            self._last = now
            return now
