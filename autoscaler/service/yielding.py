"""A discovered policy that stands aside for another on its target, unless that one is refused.

Nomad's scaling policy of a group that an enabled template scales is not run: the
template's policy comes first (`service.discovery`). But the template's policy for that
group may be refused in the end (a bad override with no last good version, a name that
another policy holds), and which policies are refused is known only once everything is
settled (`service.registry`, `with_discovered`). So Nomad's policy is given as a
`Yielding` pseudo-file, which stands aside (its problem says why), and the settling is
done again with `stand_ins` put back for the targets that no policy in force scales:
a group is never left with no policy because it opted in to a template that does not
run for it, and a note on the policy put back says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from autoscaler.core.model import Policy, TargetRef
from autoscaler.errors import Problem
from autoscaler.policy.conflicts import Claims, Located
from autoscaler.policy.loader import FileLoad


@dataclass(frozen=True, slots=True, kw_only=True)
class Yielding(FileLoad):
    """A pseudo-file whose only problem says why its policy stands aside for another on
    `target`; `instead` is that policy's own pseudo-file, put back with `note` when no
    policy in force scales `target` (`stand_ins`)."""

    target: TargetRef
    instead: FileLoad
    note: Problem


def stand_ins(
    loads: Sequence[FileLoad], in_force: Iterable[Policy]
) -> tuple[list[FileLoad], list[tuple[str, Problem]]] | None:
    """`loads` with each `Yielding` one whose target no enabled policy of `in_force` scales
    replaced by the pseudo-file it stood aside for, and each of those with its note; None
    when every one's target is scaled (nothing to put back)."""
    wanted = {load.target.identity for load in loads if isinstance(load, Yielding)}
    if not wanted:
        return None
    claims = Claims()  # only the policies on those targets: 10,000 others cost nothing
    for policy in in_force:
        if policy.enabled and policy.target.identity in wanted:
            claims.claim(Located(policy, policy.source.line))
    notes: list[tuple[str, Problem]] = []
    swapped: list[FileLoad] = []
    for load in loads:
        if isinstance(load, Yielding) and claims.holder(load.target) is None:
            swapped.append(load.instead)
            notes.append((load.instead.path, load.note))
        else:
            swapped.append(load)
    return (swapped, notes) if notes else None
