"""A discovered policy that stands aside for another on its target, unless that one is refused.

Nomad's scaling policy of a group that an enabled template scales is not run: the
template's policy comes first (`service.discovery`). But the template's policy for that
group may be refused in the end (a bad override with no last good version, a name that
another policy holds), and which policies are refused is known only once everything is
settled (`service.registry`, `with_discovered`). So Nomad's policy is given as a
`Yielding` pseudo-file, which stands aside (its problem says why), and the settling is
done again with `stand_ins` put back for the targets that no policy in force scales:
a group is never left with no policy because it opted in to a template that does not
run for it, and a note on the policy put back says so. When another policy than the
template's holds the group (a hand-written one, another template's that ran first), the
problem of the policy standing aside names that one instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from autoscaler.core.model import Policy, TargetRef
from autoscaler.errors import Problem
from autoscaler.policy.conflicts import Claims, Located
from autoscaler.policy.loader import FileLoad


@dataclass(frozen=True, slots=True, kw_only=True)
class Yielding(FileLoad):
    """A pseudo-file whose only problem says why its policy stands aside for another on
    `target` (the policy named `by`, None when it is refused); `instead` is that policy's
    own pseudo-file, put back with `note` when no policy in force scales `target`
    (`stand_ins`)."""

    target: TargetRef
    instead: FileLoad
    note: Problem
    by: str | None = None


def stand_ins(
    loads: Sequence[FileLoad], in_force: Iterable[Policy]
) -> tuple[list[FileLoad], list[tuple[str, Problem]]] | None:
    """`loads` with each `Yielding` one whose target no enabled policy of `in_force` scales
    replaced by the pseudo-file it stood aside for, and each of those with its note (and
    one whose target another policy than `by` scales saying which); None when nothing
    changes."""
    wanted = {load.target.identity for load in loads if isinstance(load, Yielding)}
    if not wanted:
        return None
    claims = Claims()  # only the policies on those targets: 10,000 others cost nothing
    for policy in in_force:
        if policy.enabled and policy.target.identity in wanted:
            claims.claim(Located(policy, policy.source.line))
    notes: list[tuple[str, Problem]] = []
    swapped: list[FileLoad] = []
    changed = False
    for load in loads:
        if not isinstance(load, Yielding):
            swapped.append(load)
            continue
        holder = claims.holder(load.target)
        if holder is None:
            swapped.append(load.instead)
            notes.append((load.instead.path, load.note))
        elif holder.policy.name != load.by:
            swapped.append(_held_by(load, holder.policy))
            changed = True
        else:
            swapped.append(load)
    return (swapped, notes) if notes or changed else None


def _held_by(load: Yielding, holder: Policy) -> Yielding:
    """`load` standing aside for `holder`, which scales its target, rather than for the
    policy it was given for (refused: its name or target was taken)."""
    where = f"{holder.source.file}:{holder.source.line}"
    problem = Problem(
        load.note.file,
        load.note.line,
        load.note.field,
        f"the group is scaled by policy {holder.name!r} ({where}), which comes before "
        "Nomad's scaling policies: this scaling block is not run; remove it, or that "
        "policy's claim on the group",
    )
    return replace(load, problems=[problem], by=holder.name)
