"""One series, one target: a grouped check whose series another target reads too fails
for each of them (as an unsupported one: it holds scale-in), with a warning saying who
else reads it and how to tell them apart.

Two targets that select the same series of one query (`group_by: {job: "{job}"}` over two
groups of one job) would each be sized on their shared traffic. Readers are compared by
series (the query and the labels selected). A policy kept on its last good version (a bad
override; `kept`) is also compared, by the template check it comes from (the template's
file and the check's name), with the other readers of that check whatever the query text:
it reads the series of the template as it was, and an edit of the query (`[2m]` to
`[5m]`, or `group` added to `by (...)` and `group_by`) does not make the job's traffic
the others' own. Against a kept reader a check is ambiguous when the other selects the
same labels, and a kept check also when another target selects more of them (its series
is part of the kept one's: a kept `{job=shop}` reads the whole job, a new `{job=shop,
group=worker}` its group only). Without kept policies, only the series tell: two templates
of one file whose checks share a name but not a query share nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from itertools import combinations, islice

from autoscaler.core import model
from autoscaler.core.series import describe_select
from autoscaler.errors import PolicyWarning
from autoscaler.policy.conflicts import Located

__all__ = ["one_series_each"]

_SHOWN = 3  # other targets named in a shared-series message at most
_Select = tuple[tuple[str, str], ...]
_Reader = tuple[str, ...]  # a target, whatever region it names or leaves out
_Series = tuple[str | None, _Select]  # a grouped query and the labels a check selects
_Family = tuple[str, str]  # the template check a check comes from: file, check name
_Labels = tuple[_Family, frozenset[tuple[str, str]]]  # labels selected within a family
_Readers = dict[_Reader, Located]  # one item per target, the first seen


def one_series_each(
    expanded: Sequence[Located], *, kept: int = 0
) -> list[tuple[Located, tuple[PolicyWarning, ...]]]:
    """`expanded` (in order), each with every grouped check whose series another target
    reads too failed, and a warning per such check (none: the item itself).

    Neither target can tell its own series from the other's, and each would be sized on
    their shared traffic (a group serving no requests scaled in on its job's request
    rate): ambiguous data, so the check fails for each of them at every evaluation, as an
    unsupported check does (it holds scale-in and never counts as a value). Their other
    checks, and the other targets, are untouched.

    A check's series is shared when another target reads the same series (same query and
    labels); and, where one of them is among the last `kept` items of `expanded` (the
    policies the registry keeps in force on their last good version), when the two come
    from the same template check and select the same labels, or the other selects a
    strict superset of a kept one's, whatever the query text (see the module). Readers are
    counted by target: `expanded` may hold two versions of one target's policy (its new one and the
    last good one the registry keeps running), which share nothing. A grouped check is
    unsupported for this reason only, so a check no longer shared comes back with its
    reason cleared (a kept policy that was held runs its check again).

    Cost: O(N x 2^k) for N checks of k labels each (every proper subset of a select is
    indexed, for the template checks read in two versions only); 10,000 targets each on
    its own series go through one pass of dictionaries.
    """
    series: dict[_Series, _Readers] = {}
    first_kept = len(expanded) - kept
    # the template checks a kept policy reads: their readers are compared by labels too
    mixed: set[_Family] = set()
    held = False  # a grouped check failed already (by an earlier call)
    for position, item in enumerate(expanded):
        target = _reader(item.policy.target)
        for check in item.policy.checks:
            if check.select:
                series.setdefault(_series(check), {}).setdefault(target, item)
                if position >= first_kept:
                    mixed.add((item.policy.source.file, check.name))
                held = held or check.unsupported is not None
    if not held and not mixed and all(len(readers) < 2 for readers in series.values()):
        return [(item, ()) for item in expanded]  # 10,000 targets, each its own series
    labels, by_kept, within = _by_labels(expanded, mixed, first_kept)
    # (series, labels, kept) -> its readers (one per target), whether some read only a
    # part of it, and the placeholders that tell them apart
    shared: dict[tuple[_Series, _Labels, bool], tuple[list[Located], bool, str] | None] = {}
    out: list[tuple[Located, tuple[PolicyWarning, ...]]] = []
    for position, item in enumerate(expanded):
        is_kept = position >= first_kept
        checks = list(item.policy.checks)
        warnings: list[PolicyWarning] = []
        for index, check in enumerate(checks):
            if not check.select:
                continue
            key = _series(check)
            family = (item.policy.source.file, check.name)
            own = (family, frozenset(check.select) if family in mixed else frozenset())
            if (key, own, is_kept) not in shared:
                if is_kept:  # any reader of its labels, or of more of them
                    more = (labels.get(own, {}), within.get(own, {}))
                else:  # a kept reader of its labels
                    more = (by_kept.get(own, {}), {})
                shared[key, own, is_kept] = _sharing(series[key], *more)
            found = shared[key, own, is_kept]
            message = None if found is None else _shared_message(item, *found, check.select)
            if message is not None:
                field = f"{item.policy.name}: checks[{index}].group_by"
                file = item.policy.source.file
                warnings.append(PolicyWarning(file, item.name_line, field, message))
            if message != check.unsupported:
                checks[index] = replace(check, unsupported=message)
        if checks == list(item.policy.checks):
            out.append((item, tuple(warnings)))
        else:
            policy = replace(item.policy, checks=tuple(checks))
            out.append((Located(policy, item.name_line), tuple(warnings)))
    return out


def _by_labels(
    expanded: Sequence[Located], mixed: set[_Family], first_kept: int
) -> tuple[dict[_Labels, _Readers], dict[_Labels, _Readers], dict[_Labels, _Readers]]:
    """The readers of the checks of the `mixed` families by the labels they select (all,
    and the kept ones: from `first_kept` on), and by every proper subset of those (the
    readers of more labels than a check)."""
    labels: dict[_Labels, _Readers] = {}
    by_kept: dict[_Labels, _Readers] = {}
    within: dict[_Labels, _Readers] = {}
    if not mixed:
        return labels, by_kept, within
    for position, item in enumerate(expanded):
        target = _reader(item.policy.target)
        for check in item.policy.checks:
            family = (item.policy.source.file, check.name)
            if check.select and family in mixed:
                own = (family, frozenset(check.select))
                labels.setdefault(own, {}).setdefault(target, item)
                if position >= first_kept:
                    by_kept.setdefault(own, {}).setdefault(target, item)
                for part in _proper_parts(check.select):
                    within.setdefault((family, part), {}).setdefault(target, item)
    return labels, by_kept, within


def _proper_parts(select: _Select) -> Iterable[frozenset[tuple[str, str]]]:
    """Every proper, non-empty subset of `select`'s pairs (none for one label)."""
    for size in range(1, len(select)):
        yield from (frozenset(part) for part in combinations(select, size))


def _series(check: model.Check) -> _Series:
    """The series `check` reads: its query, and the labels it selects in any order (a
    template's group_by written in another order selects the same series)."""
    select = check.select
    return check.query, select if len(select) < 2 else tuple(sorted(select))


def _sharing(
    same: _Readers, same_labels: _Readers, more_labels: _Readers
) -> tuple[list[Located], bool, str] | None:
    """The readers of one series (one per target), whether some of them read a part of it
    only (they select more labels), and the placeholders that tell them apart; None when
    one target reads it."""
    readers = {**more_labels, **same_labels, **same}  # a target reading the same first
    if len(readers) < 2:
        return None
    items = list(readers.values())
    part = any(target not in same and target not in same_labels for target in readers)
    return items, part, _apart(items)


def _reader(target: model.TargetRef) -> _Reader:
    """`target` as one reader of a series, whatever region it names or leaves out."""
    if isinstance(target, model.NomadTarget):
        return ("nomad", target.namespace, target.job, target.group)
    return ("asg", target.asg)


def _apart(sharing: Sequence[Located]) -> str:
    """The placeholders whose values differ among `sharing`, as group_by pairs."""
    values = [_placeholders(item.policy.target) for item in sharing]
    apart = [k for k in values[0] if len({v.get(k) for v in values}) > 1]
    return ", ".join(f'{k}: "{{{k}}}"' for k in apart) or "the placeholder that differs"


def _shared_message(
    item: Located,
    sharing: Sequence[Located],
    part: bool,
    apart: str,
    select: _Select,
) -> str:
    """Why `item`'s check is ambiguous: who else reads its series, and what to add."""
    own = _reader(item.policy.target)  # one of `sharing` (one per target) is item's own
    others = (_named(o) for o in sharing if _reader(o.policy.target) != own)
    named = ", ".join(islice(others, _SHOWN))
    if len(sharing) - 1 > _SHOWN:
        named += f" and {len(sharing) - 1 - _SHOWN} more"
    what = "this series or a part of it" if part else "this same series"
    return (
        f"ambiguous: {named} {'reads' if len(sharing) == 2 else 'read'} {what} "
        f"({describe_select(select)}) of the grouped query: add the label that tells them "
        f"apart to the query's by (...) and to group_by (e.g. {apart}); until then this "
        "check fails for each of them, and holds scale-in"
    )


def _named(item: Located) -> str:
    """`web-shop-web (nomad job shop group web)`: a reader's policy and its target (the
    policy named may not be the target's own: one refused for a name another holds)."""
    target = item.policy.target
    if isinstance(target, model.NomadTarget):
        where = "" if target.namespace == "default" else f" in namespace {target.namespace}"
        return f"{item.policy.name} (nomad job {target.job} group {target.group}{where})"
    return f"{item.policy.name} (aws_asg {target.asg})"


def _placeholders(target: model.TargetRef) -> dict[str, str]:
    """A target's placeholder values, as the template filled them in."""
    if isinstance(target, model.NomadTarget):
        return {"job": target.job, "group": target.group, "namespace": target.namespace}
    return {"asg": target.asg}
