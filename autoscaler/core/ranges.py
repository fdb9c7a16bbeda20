"""The ranges the numbers of a policy (and of a target's answer) stay in, and clamped time.

The decision core does float and datetime arithmetic on counts, percentages, durations
and instants. Within these ranges none of it can overflow: the policy language rejects a
value outside them at its field (`FILE:LINE: FIELD: message`), and the core holds when a
target reports a count outside them, so whatever `validate` accepts also evaluates.
Instants are the exception: `now` may be any `datetime`, so sums of an instant and a
duration go through `shifted`, which stops at the ends of time instead of raising.
"""

from __future__ import annotations

from datetime import datetime, timedelta

MAX_COUNT = 1_000_000
"""The largest count (min, max, fixed count, fallback, limits, changes, schedules): far above
any ASG or Nomad task group, far below where float arithmetic loses whole numbers."""

MAX_PERCENT = 10_000.0
"""The largest percentage (step limits, threshold changes): a hundredfold."""

MAX_DURATION = timedelta(days=365)
"""The longest duration (`1y` in Prometheus syntax): interval, cooldowns, stabilization
windows, a recurring schedule's length."""


MAX_REPLAY_OFFSET = timedelta(days=10 * 365)
"""The longest relative time of a replay (`backtest --from -3650d`, `simulate --from`):
ten years of history or trace, where a policy's own durations stop at `MAX_DURATION`."""


def shifted(instant: datetime, delta: timedelta) -> datetime:
    """`instant + delta`, or the first/last representable instant when that is out of range.

    Only reachable with clocks near year 1 or 9999: a window that would end after the
    last instant simply lasts until then.
    """
    try:
        return instant + delta
    except OverflowError:
        end = datetime.max if delta > timedelta(0) else datetime.min
        return end.replace(tzinfo=instant.tzinfo)
