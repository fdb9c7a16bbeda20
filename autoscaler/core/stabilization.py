"""Step 4 of the decision: recommendations smoothed over windows, as the Kubernetes HPA does.

The policy's memory keeps the recent recommendations; a scale-up goes only to the lowest
of the `up` window and a scale-down only to the highest of the `down` window. Apart from
the pipeline because it owns that history: what it keeps (`recorded`, `_undominated`)
decides every later evaluation, with data or without.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from autoscaler.core.durations import format_duration
from autoscaler.core.frozen import built
from autoscaler.core.model import Memory, Recommendation
from autoscaler.core.reasons import later
from autoscaler.core.run import Run

_ZERO = timedelta(0)
# `Memory(...)` and `Recommendation(...)`, cheaper: every evaluation makes them here.
_MEMORY, _RECOMMENDATION = built(Memory), built(Recommendation)


def stabilize(run: Run, recommendation: int, memory: Memory) -> tuple[int, Memory]:
    """The recommendation smoothed over the windows, exactly as the Kubernetes HPA does.

    Scale up only to the lowest recommendation of the `up` window and down only to the
    highest of the `down` window (both include this one). History older than the longest
    window is dropped from the returned memory; this recommendation is always kept, and so
    is every older one a later one does not stand in for (`_undominated`).

    A memory without any recommendation (the policy's first evaluation on its target, or
    its memory lost) counts the current count as one made now, and keeps it, as the HPA
    does when it first sees a target (`recordInitialRecommendation`): a scale-in then
    waits one whole down window of evidence. Only then: recommendations past the window
    (an interval longer than it, a gap) are still a history, and seeding again would
    hold every scale-in of a policy evaluated less often than its window. (The up window
    is not seeded: a new policy may scale up at once.)
    """
    windows, now = run.policy.stabilization, run.now
    # One pass over the history (replays run this hundreds of thousands of times). Ages
    # (`now - at`) rather than cutoffs (`now - window`), which leave datetime's range when
    # `now` is near year 1.
    longest = max(windows.up, windows.down)
    up_rec = down_rec = recommendation
    kept: list[Recommendation] = []
    cutoffs = _cutoffs(now, longest, windows.up, windows.down)
    if cutoffs is not None:
        # `age < window` is `at > now - window`: one subtraction per window, not per record.
        keep_after, up_after, down_after = cutoffs
        for r in memory.recommendations:
            at, count = r.at, r.count
            if at > keep_after:
                kept.append(r)
                # A record from a clock that went back (dated after `now`) holds no
                # scale-up: an up window of 0s has only this recommendation in it, as in
                # the HPA. (It still holds a scale-in: that is the safe direction.)
                if count < up_rec and at > up_after and at <= now:
                    up_rec = count
                if count > down_rec and at > down_after:
                    down_rec = count
    else:
        zero = _ZERO
        for r in memory.recommendations:
            age, count = now - r.at, r.count
            if age < longest:
                kept.append(r)
                if count < up_rec and age < windows.up and age >= zero:
                    up_rec = count
                if count > down_rec and age < windows.down:
                    down_rec = count
    seeded = not memory.recommendations and windows.down > _ZERO and run.current > down_rec
    if seeded:
        down_rec = run.current
        kept.append(_RECOMMENDATION(at=now, count=run.current))
    stabilized = min(max(run.current, up_rec), down_rec)
    kept.append(_RECOMMENDATION(at=now, count=recommendation))
    memory = _MEMORY(  # `replace(memory, recommendations=...)` at a third of its cost
        last_scaled_at=memory.last_scaled_at,
        recommendations=_undominated(kept),
        missing_data_streak=memory.missing_data_streak,
        missing_data_since=memory.missing_data_since,
    )

    if stabilized == recommendation:
        return stabilized, memory
    if seeded:
        run.reasons.append(later(_seeded_text, windows.down, stabilized, recommendation))
        return stabilized, memory
    if stabilized < recommendation:
        direction, window, which, seen = "up", windows.up, "lowest", up_rec
    else:
        direction, window, which, seen = "down", windows.down, "highest", down_rec
    run.reasons.append(
        later(_stabilized_text, (direction, window, which), seen, stabilized, recommendation)
    )
    return stabilized, memory


def _stabilized_text(
    side: tuple[str, timedelta, str], seen: int, stabilized: int, recommendation: int
) -> str:
    direction, window, which = side
    return (
        f"stabilization {direction} {format_duration(window)}: {which} recommendation"
        f" {seen} → {stabilized} instead of {recommendation}"
    )


def recorded(run: Run, memory: Memory, count: int) -> Memory:
    """`memory` with `count` recorded as this evaluation's recommendation, as when some
    checks fail: the down window then holds it for its length after the data comes back,
    so the first answers after an outage (often the least trustworthy: a rate over a
    Prometheus just restarted) do not scale in at once on an empty window."""
    windows, now = run.policy.stabilization, run.now
    longest = max(windows.up, windows.down)
    kept = [r for r in memory.recommendations if now - r.at < longest]
    kept.append(Recommendation(at=now, count=count))
    return replace(memory, recommendations=_undominated(kept))


def _seeded_text(window: timedelta, stabilized: int, recommendation: int) -> str:
    return (
        f"stabilization down {format_duration(window)}: a first evaluation (no earlier "
        f"recommendation), so the current {stabilized} counts as one made now → "
        f"{stabilized} instead of {recommendation}"
    )


def _undominated(records: list[Recommendation]) -> tuple[Recommendation, ...]:
    """`records` without each one that a later one (by time) stands in for in every use.

    Every use of the history looks at a suffix of it in time: the windows (`age < window`)
    and the rising rule (since the last scaling action). In any such suffix holding a
    record, a later record is held too, so a record with a later one at least as high never
    sets a maximum (the down window, the rising rule), and with a later one at least as low
    never sets a minimum (the up window). Dropping what is both changes no decision, and a
    steady count keeps one record instead of one per evaluation of the longest window (at
    10,000 targets every 10 s with a 5-minute window: 30 each, some 30 MB, written to the
    state at every evaluation). Minima are kept even while the policy has no up window:
    the memory outlives the policy's windows (a reload or a restart may add one, and must
    find the lows the whole history holds). Records out of time order (a clock that went
    back) are all kept, as they always were.
    """
    if len(records) < 2:
        return tuple(records)
    at = records[0].at
    for r in records:
        if r.at < at:
            return tuple(records)
        at = r.at
    kept: list[Recommendation] = []
    high = low = records[-1].count
    kept.append(records[-1])
    for r in reversed(records[:-1]):
        count = r.count
        if count > high:
            high = count
            kept.append(r)
        elif count < low:
            low = count
            kept.append(r)
    kept.reverse()
    return tuple(kept)


def _cutoffs(
    now: datetime, longest: timedelta, up: timedelta, down: timedelta
) -> tuple[datetime, datetime, datetime] | None:
    """`now - window` for each of the three windows, when comparing with them is exactly
    comparing ages with the windows: `now` carries a fixed UTC offset (`datetime.timezone`, as every
    instant the controller makes does), so that instants compare as the instants they are,
    and the subtraction stays within datetime's range. None otherwise (the caller then
    subtracts each record's time from `now`)."""
    if type(now.tzinfo) is not timezone:
        return None
    try:
        keep = now - longest
        # One subtraction per distinct window (`now - 0` is `now`): most policies have a
        # zero window or two equal ones, and a replay makes this cut at every evaluation.
        return keep, _cut(now, up, longest, keep), _cut(now, down, longest, keep)
    except OverflowError:
        return None


def _cut(now: datetime, window: timedelta, longest: timedelta, keep: datetime) -> datetime:
    """`now - window`, given `keep` = `now - longest` (an equal instant either way)."""
    if window == longest:
        return keep
    return now - window if window else now
