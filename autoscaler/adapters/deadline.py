"""The time one target call may take: its own retry deadline, cut short by its caller's.

Under `--ha` a scale call must not send a request after the leader lease's local validity
ends (another replica may lead by then): the reconciler passes that instant down as the
call's `deadline` (`ScalingTarget.scale`). A target keeps retrying within its own deadline
as before, but never past the caller's: no attempt starts at or after it, no retry waits
into it, and each request's timeout ends by it. When the caller's deadline is what stops
the call, it fails with `TargetDeadline`, saying how many attempts were sent and whether
the last one may still have landed (sent, then no answer in time), so the reconciler can
report it and keep what it recorded consistent.

Both deadlines are instants of `monotonic()`: `CLOCK_BOOTTIME`, the clock the lease is
measured on, which keeps counting while the process is stopped or the machine suspended
(`time.monotonic()` does not count a suspend, and would let a retry out late).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autoscaler.errors import TargetDeadline, TargetError, TargetUnavailable

__all__ = ["Budget", "monotonic"]


def monotonic() -> float:
    """Seconds on a clock that never jumps and keeps counting while suspended or stopped."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):  # not Linux
        return time.monotonic()


@dataclass(kw_only=True)
class Budget:
    """One call's time: `seconds` of its own (its retry deadline), ending no later than
    `caller` (an instant of `monotonic()`; None: no deadline but its own, as before).

    Targets ask `timeout` before every attempt, use `stop` as the retry loop's stop
    condition, and, when `cut` says the caller's deadline stopped the loop, raise `over()`
    instead of their usual "kept failing" error. `clock` is `monotonic` (tests pass a fake).
    """

    seconds: float
    caller: float | None = None
    clock: Callable[[], float] = monotonic
    own_until: float = field(init=False)
    until: float = field(init=False)
    cut: bool = field(default=False, init=False)  # the caller's deadline ended the call

    def __post_init__(self) -> None:
        self.own_until = self.clock() + self.seconds
        self.until = self.own_until if self.caller is None else min(self.own_until, self.caller)

    def left(self) -> float:
        """Seconds left before the budget ends (zero or less once it has)."""
        return self.until - self.clock()

    def check(self, what: str, *, sent: int, last: str | None = None) -> None:
        """Return while an attempt of `what` may start; raise `TargetDeadline` once the
        caller's deadline has come: nothing more is sent (`sent`: attempts already sent,
        `last`: how the last of them failed, said in the error)."""
        if self.caller is not None and self.caller - self.clock() <= 0:
            raise self.refused(what, sent=sent, last=last)

    def refused(self, what: str, *, sent: int, last: str | None = None) -> TargetDeadline:
        """The error of an attempt of `what` not sent because the caller's deadline came
        (after `sent` attempts, the last of which failed with `last`, if given)."""
        self.cut = True
        again = f" again after {_attempts(sent)}" if sent else ""
        failed = f" (last: {last})" if sent and last else ""
        return TargetDeadline(f"{what} was not sent{again}{failed}", attempts=sent)

    def timeout(self, what: str, timeout: float, *, sent: int, last: str | None = None) -> float:
        """The timeout of the attempt of `what` about to start: `timeout`, ending by the
        caller's deadline (`check` first)."""
        self.check(what, sent=sent, last=last)
        if self.caller is None:
            return timeout
        return max(0.001, min(timeout, self.caller - self.clock()))

    def stop(self, wait: float | None) -> bool:
        """True when a retry after waiting `wait` seconds would start past the budget."""
        if self.clock() + (wait or 0.0) < self.until:
            return False
        self.cut = self.caller is not None and self.caller <= self.own_until
        return True

    def over(self, what: str, *, sent: int, last: str, unanswered: bool) -> TargetDeadline:
        """The error of a call stopped by the caller's deadline after `sent` attempts, the
        last of which failed with `last`; `unanswered`: that one got no answer in time."""
        landed = (
            "; the last got no answer in time, so it may still be applied" if unanswered else ""
        )
        return TargetDeadline(
            f"{what} was not sent again after {_attempts(sent)} (last: {last}){landed}",
            attempts=sent,
            maybe_applied=unanswered,
        )


def _attempts(n: int) -> str:
    return f"{n} attempt{'' if n == 1 else 's'}"


def after_unanswered(error: TargetError, what: str) -> TargetError:
    """`error`, the end of a write an earlier attempt of which was sent and got no answer in
    time: whatever the later attempts met, that one may have landed, so the error says so
    (`maybe_applied`) and the caller keeps the cooldown it recorded.

    The later attempts' errors are often caused by the first one having landed: Nomad
    refuses a scale while the deployment the first request started runs (busy), AWS answers
    ResourceContention while it updates the group. Taken alone, they withdrew the cooldown
    and recorded "not scaled" for a change that was made.
    """
    note = "; an earlier attempt got no answer in time, so it may have been applied"
    if isinstance(error, TargetDeadline | TargetUnavailable):
        if not error.maybe_applied:
            error.maybe_applied = True
            error.args = (f"{error}{note}",)
        return error
    return TargetUnavailable(f"{what}: {error}{note}", maybe_applied=True)
