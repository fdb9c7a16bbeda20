"""promtool's expanding notation for values over time: `'1+1x3 _ 7x2 stale'`.

Items are separated by spaces; each gives one or more consecutive values:

- `a` one value; numbers as Prometheus writes them, `NaN`, `Inf`, `+Inf`, `-Inf` included,
  in any case as promtool reads them (`nan`, `-inf`, `INF`; not `Infinity`);
- `a+bxn` / `a-bxn` `n + 1` values: `a`, then each the one before `± b`, added up as
  promtool adds them (`'-2+4x3'` is `-2 2 6 10`, `'1-Infx1'` is `1 -Inf`);
- `axn` `n + 1` times `a` (shorthand for `a+0xn`);
- `_` one missing value, `_xn` `n` missing values (not `n + 1`: nothing to increment);
- `stale` one stale value (the series ended).

This is the notation of `promtool test rules` (`input_series`), read here as what a check's
query returns at each evaluation: a missing or stale value is a query without data.
"""

from __future__ import annotations

import re
from enum import StrEnum

# `Inf` and `NaN` in any case: promtool's lexer folds them (`inf`, `NAN`) as PromQL does.
_NUMBER = r"(?:[+-]?(?:(?i:inf|nan)|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?))"
_UNSIGNED = r"(?:(?i:inf)|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_EXPANDING = re.compile(rf"^(?P<a>{_NUMBER})(?:(?P<op>[+-])(?P<b>{_UNSIGNED}))?x(?P<n>\d+)$")
_SINGLE = re.compile(rf"^{_NUMBER}$")
_MISSING_TIMES = re.compile(r"^_x(?P<n>\d+)$")
# A bound on one item's expansion: a typo such as `1x1000000000` must not eat the memory.
MAX_VALUES = 1_000_000


class Gap(StrEnum):
    """A value that is not a number: missing (`_`) or stale (`stale`)."""

    MISSING = "_"
    STALE = "stale"


SeriesValue = float | Gap


class SeriesError(ValueError):
    """An item of a series is not in the notation; `item` is its 1-based position."""

    def __init__(self, item: int, text: str, reason: str) -> None:
        self.item, self.text, self.reason = item, text, reason
        super().__init__(f"item {item} {text!r}: {reason}")


_SYNTAX = (
    "write a number (1, 0.5, NaN, Inf), 'a+bxn', 'a-bxn', 'axn', '_', '_xn' or 'stale' "
    "(items separated by spaces)"
)


def expand(text: str) -> list[SeriesValue]:
    """The values of `text`, one per evaluation; raise `SeriesError` at the first bad item."""
    values: list[SeriesValue] = []
    for position, item in enumerate(text.split(), start=1):
        values.extend(_item(position, item))
        if len(values) > MAX_VALUES:
            raise SeriesError(position, item, f"the series exceeds {MAX_VALUES:,} values")
    return values


def _item(position: int, item: str) -> list[SeriesValue]:
    if item == "_":
        return [Gap.MISSING]
    if item == "stale":
        return [Gap.STALE]
    missing = _MISSING_TIMES.match(item)
    if missing is not None:
        return [Gap.MISSING] * _times(position, item, missing.group("n"))
    if _SINGLE.match(item):
        return [float(item)]
    expanding = _EXPANDING.match(item)
    if expanding is None:
        raise SeriesError(position, item, _SYNTAX)
    start = float(expanding.group("a"))
    count = _times(position, item, expanding.group("n")) + 1
    if expanding.group("op") is None:
        return [start] * count  # `axn`: `a` repeated, as promtool does (`Infx3` stays Inf)
    increment = float(expanding.group("b"))
    if expanding.group("op") == "-":
        increment = -increment
    # Each value the one before plus `increment`, as promtool computes them: never
    # `start + i * increment`, whose first value `1 + 0 * -Inf` is NaN (and whose rounding
    # differs: `0.1+0.1x9` ends at 0.9999999999999999 in promtool, not 1.0).
    values: list[SeriesValue] = []
    value = start
    for _ in range(count):
        values.append(value)
        value += increment
    return values


def _times(position: int, item: str, text: str) -> int:
    times = int(text)
    if times > MAX_VALUES:
        raise SeriesError(position, item, f"x{times} exceeds {MAX_VALUES:,} values")
    return times
