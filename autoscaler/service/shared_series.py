"""One series, one target, whatever state the targets are in: a grouped check whose series
another target reads too fails for each of them (`policy.one_series.one_series_each`).

Discovery's pseudo-files alone do not tell who reads a series: a target whose new policy
is invalid (a bad override) has none in its pseudo-file, while the registry keeps its last
good one running, reading that series. So the check is made where both are known: by the
registry at each settling (with the policies in force), and by the commands that read
discovery once (`with_discovered`, nothing in force).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from itertools import islice

from autoscaler.errors import PolicyWarning
from autoscaler.policy.conflicts import Located
from autoscaler.policy.expansion import one_series_each
from autoscaler.policy.loader import FileLoad


def each_its_own_series(
    loads: Sequence[FileLoad], running: Mapping[str, list[Located]] | None = None
) -> tuple[list[FileLoad], dict[str, list[Located]]]:
    """`loads` (discovered pseudo-files) with each grouped check whose series another target
    reads too failed, with a warning on its target's file (`one_series.one_series_each`);
    and `running` (the registry's policies in force, by file key) with the same done to
    the discovered targets' policies in it.

    Whether a series is shared depends on every target that reads it, in whatever state:
    a target whose new policy is invalid (a bad override) keeps its last good one running
    (`running`), and still reads the series, as does one whose new policy is refused for a
    collision. So the readers are every policy of `loads` and every one in force for one
    of their targets, and the ones in force are failed too (a warning on the load of a
    target kept so). Done at each settling, on the cached expansions."""
    running = running or {}
    # the policies in force for the loads' targets; not those that are the loads' own
    # (unchanged: the usual case), which are checked once, as the loads'
    last_good = {
        load.path: items
        for load in loads
        if (items := running.get(load.path)) and items != list(load.policies)
    }
    new = [item for load in loads for item in load.policies]
    # Only a policy kept in force for a load with problems (no new policy: a bad override)
    # reads the series of the template as it was, and is compared by its template check
    # whatever the query (`kept`). One merely being replaced by its load's new policy (an
    # edit, or the new one without a hold the old one carries) is compared by its series
    # only: compared by template check it held a target of another template of the file
    # whose check has the same name, by turns at every settling.
    replaced = [
        item for load in loads if not load.problems for item in last_good.get(load.path, ())
    ]
    kept = [item for load in loads if load.problems for item in last_good.get(load.path, ())]
    checked = iter(one_series_each([*new, *replaced, *kept], kept=len(kept)))
    out: list[FileLoad] = []
    in_force = dict(running)
    for load in loads:
        items, warnings = _checked(checked, len(load.policies))
        if warnings or items != list(load.policies):
            out.append(replace(load, policies=items, warnings=(*load.warnings, *warnings)))
            if load.path in running and load.path not in last_good:
                in_force[load.path] = items
        else:
            out.append(load)
    # in the order they were given: the replaced ones', then the kept ones'
    for problems in (False, True):
        for i, load in enumerate(out):
            if bool(load.problems) is not problems:
                continue
            items, warnings = _checked(checked, len(last_good.get(load.path, ())))
            if load.path in last_good and items != last_good[load.path]:
                in_force[load.path] = items
            if problems and warnings:  # kept: its last good policy says why it is held
                out[i] = replace(load, warnings=(*load.warnings, *warnings))
    return out, in_force


def _checked(
    checked: Iterator[tuple[Located, tuple[PolicyWarning, ...]]], count: int
) -> tuple[list[Located], list[PolicyWarning]]:
    """The next `count` items of `checked`, and their warnings."""
    items: list[Located] = []
    warnings: list[PolicyWarning] = []
    for item, more in islice(checked, count):
        items.append(item)
        warnings.extend(more)
    return items, warnings
