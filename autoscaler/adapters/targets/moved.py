"""The check every target makes before it sets a count: has someone else changed it?

Neither SetDesiredCapacity nor Nomad's scale request takes a condition, so a count raised
by hand (or by another tool) between our read and our write would be overwritten: an
intended scale-up landing below it is a scale-in nobody decided. Each target reads its
count right before setting it and refuses when it moved since the decision read it; the
next evaluation decides on the new count.
"""

from __future__ import annotations

from autoscaler.errors import TargetBusy


class Landed(Exception):
    """A scale call about to be retried finds the target at its count already: an earlier
    attempt landed (its answer was lost, or an error)."""


def landed_or_moved(where: str, what: str, before: int, now: int, count: int) -> None:
    """Before a retry of a scale to `count`: raise `Landed` when `now` (read afresh) is
    `count` and not `before` (what the first attempt read), and `TargetBusy` when it is
    neither (someone else set it while ours was retried: sent again, ours would overwrite
    it, a scale nobody decided). Return when the call may be sent again."""
    if now == count and now != before:
        raise Landed(f"{where} {what} is {count}: an earlier attempt landed")
    moved_since(where, what, before, now, count)


def moved_since(where: str, what: str, expected: int | None, now: int, count: int) -> None:
    """Raise `TargetBusy` when `now` (just read) is not `expected` (what was decided on)."""
    if expected is None or now == expected:
        return
    raise TargetBusy(
        f"{where} {what} changed from {expected} to {now} since it was read (another actor); "
        f"not setting {count}: the next evaluation decides on {now}"
    )
