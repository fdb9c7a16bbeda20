"""Every series of one instant query, read by many checks: each picks its own series by labels.

A policy template's check runs one grouped query (`sum by (job) (...)`) for all of its
targets, and each target reads the series whose labels match its `group_by`. The answer is
parsed once per tick into a `SeriesSet` and handed to every target; `pick` looks a target's
series up in an index built once per set of label names, so 10,000 targets cost 10,000
dictionary lookups, not 10,000 scans. The rules are those of a single-series check: no
series, several series, NaN or ±Inf fail the check (it never counts as zero), and that
failure is the target's own: the others read their series as usual. So is a series the
source could not read a number from (a native histogram): kept `unusable`, with why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from autoscaler.errors import QueryError

Labels = Mapping[str, str]
Select = tuple[tuple[str, str], ...]
# An index: series key (the label value, or the values of several labels) -> the position
# of the one series with it, or the positions of several. Rebuilt for each answer (every
# tick, 10,000 series for 10,000 targets), so it keeps no list or tuple per series when
# it need not.
_Key = str | None | tuple[str | None, ...]
_Index = dict[_Key, int | list[int]]

_SHOWN = 3


@dataclass(frozen=True, eq=False)
class SeriesSet:
    """The series of one instant query: `(labels, value)` pairs, values as floats (NaN too).

    `unusable` maps the position of each series that has no number (its value is NaN) to
    why, for the target that picks it."""

    query: str
    series: Sequence[tuple[Labels, float]]
    unusable: Mapping[int, str] = field(default_factory=dict)
    # label names -> {label values -> position(s) in `series`}; filled on first use.
    _indexes: dict[tuple[str, ...], _Index] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.series)

    def pick(self, select: Select) -> float:
        """The finite value of the one series whose labels include every `select` pair.

        Raises `QueryError` when no series matches, several do (ambiguous), the series is
        unusable, or the value is NaN or ±Inf.
        """
        names = tuple(name for name, _ in select)
        wanted = _key(tuple(value for _, value in select))
        at = self._index(names).get(wanted)
        found = [] if at is None else [at] if isinstance(at, int) else at
        shown = describe_select(select)
        if not found:
            raise QueryError(
                f"no series with {shown} among the {len(self.series)} of the grouped query "
                f"{self.query!r} (no data for this target: is it exported under these labels?)"
            )
        if len(found) > 1:
            listed = "; ".join(_format(self.series[i][0]) for i in found[:_SHOWN])
            more = f" and {len(found) - _SHOWN} more" if len(found) > _SHOWN else ""
            raise QueryError(
                f"{len(found)} series match {shown} in the grouped query {self.query!r} "
                f"({listed}{more}): ambiguous; aggregate by the group_by labels "
                "(e.g. sum by (...)) so each target has exactly one series"
            )
        value = self.series[found[0]][1]
        if found[0] in self.unusable:
            raise QueryError(
                f"the series with {shown} of {self.query!r} is unusable: {self.unusable[found[0]]}"
            )
        if math.isnan(value):
            raise QueryError(f"the series with {shown} of {self.query!r} is NaN")
        if math.isinf(value):
            raise QueryError(f"the series with {shown} of {self.query!r} is {value}")
        return value

    def _index(self, names: tuple[str, ...]) -> _Index:
        index = self._indexes.get(names)
        if index is None:
            # Two threads may build it at once: both get the same index, one is kept.
            index = {}
            for position, (labels, _) in enumerate(self.series):
                key = _key(tuple(labels.get(name) for name in names))
                seen = index.get(key)
                if seen is None:
                    index[key] = position
                elif isinstance(seen, list):
                    seen.append(position)
                else:
                    index[key] = [seen, position]
            self._indexes[names] = index
        return index


def _key(values: tuple[str | None, ...]) -> _Key:
    """A series' key in an index: its one label value, or the tuple of several."""
    return values[0] if len(values) == 1 else values


def sharing(previous: SeriesSet, answer: SeriesSet) -> SeriesSet:
    """`answer`, holding `previous`' label dicts and indexes when both are answers to the
    same query with the same labels in the same order (else `answer` itself).

    A template's grouped query is answered again every tick, usually with the same series
    (only their values move): 10,000 series would otherwise mean 10,000 new label dicts and
    a new index each tick, made while the previous answer is still in use and dropped a
    tick later, which fragments the allocator's arenas. Sharing them keeps a value and a
    pair per series from each answer; picks see the same labels at the same positions.

    Runs in the fetcher's thread while workers may still pick in `previous` (adding
    indexes): it only reads a copy of its indexes, or passes the dict on (an index, once
    added, never changes; two sets holding the dict both add to it).
    """
    if answer.query != previous.query or len(answer.series) != len(previous.series):
        return answer
    pairs = zip(answer.series, previous.series, strict=True)
    if all(labels is before for (labels, _), (before, _) in pairs):
        # Already the same dicts (the source reused them): only the indexes to share. A
        # worker still picking in `previous` may add an index meanwhile (`_index`): a walk
        # over the live dict would raise "changed size during iteration", so walk a copy
        # (made in one step under the GIL, as the insert is).
        for names, index in previous._indexes.copy().items():
            answer._indexes.setdefault(names, index)
        return answer
    for (labels, _), (before, _) in zip(answer.series, previous.series, strict=True):
        if labels != before:
            return answer
    series = [
        (before, value)
        for (_, value), (before, _) in zip(answer.series, previous.series, strict=True)
    ]
    return SeriesSet(
        query=answer.query, series=series, unusable=answer.unusable, _indexes=previous._indexes
    )


def _format(labels: Labels) -> str:
    name = labels.get("__name__", "")
    pairs = ", ".join(f"{k}={v!r}" for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{pairs}}}"


def describe_select(select: Select) -> str:
    """`job='web', group='api'`: a target's labels in a grouped answer, for messages."""
    return ", ".join(f"{name}={value!r}" for name, value in select)


def own_series(query: str, select: Select) -> str:
    """`query` narrowed, in PromQL, to the series carrying every `select` pair.

    A template's targets each read their history (forecast, anomaly window) with a range
    query. Sent as written, the grouped query returns every target's series to each of
    them: N targets, N answers of N series (at 1,000 targets and 14 days at 1m, 20 million
    points per answer). Narrowed with `and on(labels) label_replace(vector(1), ...)`, each
    answer holds the target's series alone, exactly those the caller would keep (a series
    without one of the labels matches no value but "" and is left out, as here).
    """
    if not select:
        return query
    right = "vector(1)"
    for name, value in select:
        right = f'label_replace({right}, "{name}", "{_promql_text(value)}", "", "")'
    on = ", ".join(name for name, _ in select)
    return f"({query}) and on({on}) {right}"


def _promql_text(value: str) -> str:
    """`value` as the replacement of label_replace inside a double-quoted PromQL string:
    `$` doubled (it would start a capture group reference), backslash and quote escaped."""
    value = value.replace("$", "$$")
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Labelled(Protocol):
    @property
    def labels(self) -> Labels: ...


_S = TypeVar("_S", bound=_Labelled)


def matching(series: Sequence[_S], select: Select) -> list[_S]:
    """The series whose labels include every pair of `select` (all of them for `()`): a
    template target's own series of a grouped range query."""
    if not select:
        return list(series)
    return [s for s in series if all(s.labels.get(name) == value for name, value in select)]
