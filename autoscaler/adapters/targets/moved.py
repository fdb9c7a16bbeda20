"""The check every target makes before it sets a count: has someone else changed it?

Neither SetDesiredCapacity nor Nomad's scale request takes a condition, so a count raised
by hand (or by another tool) between our read and our write would be overwritten: an
intended scale-up landing below it is a scale-in nobody decided. Each target reads its
count right before setting it and refuses when it moved since the decision read it; the
next evaluation decides on the new count.
"""

from __future__ import annotations

from autoscaler.errors import TargetBusy


def moved_since(where: str, what: str, expected: int | None, now: int, count: int) -> None:
    """Raise `TargetBusy` when `now` (just read) is not `expected` (what was decided on)."""
    if expected is None or now == expected:
        return
    raise TargetBusy(
        f"{where} {what} changed from {expected} to {now} since it was read (another actor); "
        f"not setting {count}: the next evaluation decides on {now}"
    )
