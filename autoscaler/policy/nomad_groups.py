"""Nomad Autoscaler's check groups (`group = "..."` in a check) in our terms.

There, the checks of one group are reduced first, among themselves: a scale-out wins, then
a scale-in, over "nothing to do"; the group's answer then meets the other checks as one
(a scale-in only when no one asks for more). So a "memory high" threshold check (+1) and
a "memory low" one (-1) on one query scale in when memory is low. Here every check counts
on its own and the highest count wins: the pair, carried as two checks, never scales in.

Threshold checks of one group on one query are one threshold check here, with the checks'
steps: those that add first, since the first step that matches decides, so a value that
matches both asks for more, as there. Steps of one direction that overlap with different
changes are not merged (there the larger count wins, here the first step): nor is a group
with another strategy, or reading several queries. Those are carried check by check, and
a note says what that does: a scale-in needs every check of the group to ask for it, and
never comes when one of them can only ask for more.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoscaler.policy.nomad_autoscaler import Translation

__all__ = ["carry_group"]


def carry_group(out: Translation, group: str, members: list[str], name: str) -> None:
    """Carry check group `group`, whose checks are named `members` here, into `out`: as one
    threshold check `name` when it can be, otherwise check by check with a note."""
    if len(members) < 2:  # a group of one is a check on its own there too
        return
    entries = [c for c in out.data["checks"] if c["name"] in members]
    shown = ", ".join(repr(m) for m in members)
    why = _not_merged(entries, members)
    if why is not None:
        note = (
            f"check group {group!r} ({shown}) is not carried: {why}; each check counts on its "
            "own here, so a scale-in needs every one of them to ask for it (Nomad Autoscaler: "
            "one of them, when none of the group asks for more)"
        )
        only_up = [c["name"] for c in entries if _adds_only(c)]
        if only_up:
            note += f"; check {only_up[0]!r} never asks for fewer, so this policy never scales in"
        out.notes.append(note)
        return
    steps = [c["steps"][0] for c in entries]
    steps.sort(key=lambda step: not _adds(step))  # stable: the checks' order otherwise
    merged = {"name": name, "strategy": "threshold", "query": entries[0]["query"], "steps": steps}
    first = out.data["checks"].index(entries[0])
    out.data["checks"][first] = merged
    out.data["checks"] = [c for c in out.data["checks"] if c["name"] not in members]
    out.names[out.names.index(members[0])] = name
    out.names[:] = [n for n in out.names if n not in members[1:]]
    out.notes.append(
        f"checks {shown} of group {group!r} are one threshold check {name!r} here, with "
        "their steps, those that add first: as there, a value within one of them that "
        "removes scales in unless one that adds matches too"
    )


def _not_merged(entries: list[dict[str, Any]], members: list[str]) -> str | None:
    """Why the checks `entries` (of `members`) cannot be one threshold check, or None."""
    carried = {c["name"] for c in entries}
    for member in members:
        if member not in carried:
            return f"check {member!r} is not carried"
    for entry in entries:
        if entry["strategy"] != "threshold" or len(entry["steps"]) != 1:
            return f"check {entry['name']!r} is {entry['strategy']}: only threshold checks merge"
    if len({entry["query"] for entry in entries}) > 1:
        return "its checks read different queries: only checks of one query merge"
    for i, one in enumerate(entries):
        for other in entries[i + 1 :]:
            a, b = one["steps"][0], other["steps"][0]
            if _adds(a) == _adds(b) and a["change"] != b["change"] and _overlap(a, b):
                return (
                    f"the bounds of {one['name']!r} and {other['name']!r} overlap with "
                    "different changes (there the larger count wins, here the first step)"
                )
    return None


def _adds(step: dict[str, Any]) -> bool:
    return str(step["change"]).startswith("+")


def _adds_only(check: dict[str, Any]) -> bool:
    """Whether `check` can only ask for more (a threshold whose every step adds)."""
    return check["strategy"] == "threshold" and all(_adds(step) for step in check["steps"])


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether some value is within both steps' bounds (`above` and `below`, exclusive)."""
    low: float = max(a.get("above", -math.inf), b.get("above", -math.inf))
    high: float = min(a.get("below", math.inf), b.get("below", math.inf))
    return low < high
