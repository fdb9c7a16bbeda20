"""When an answer from Prometheus is usable, and what it gives: the one value of a check,
or every series of a grouped query, or a `QueryError` that says why not.

A value is used only when it is what the expression asks for: the answer's `resultType`
must be the expression's own type (parsed offline with promql-parser), one series for a
check, a finite number, no warnings (Prometheus answers "success" with partial data
when a `remote_read` endpoint fails) and not marked partial (VictoriaMetrics' cluster
answers "success" with `"isPartial": true` when some storage nodes could not be read).
The client drops `resultType`, `warnings` and `isPartial`; `result_notes` reads them from
the response for `PrometheusSource`'s response hook.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple, TypeGuard

import promql_parser
import requests

from autoscaler.core.series import Labels, SeriesSet
from autoscaler.errors import QueryError

__all__ = [
    "Hook",
    "Notes",
    "refuse_warnings",
    "result_notes",
    "retry_after",
    "sample_pairs",
    "series_set",
    "single_value",
]

# Builds each object of a JSON answer from its (key, value) pairs, as `object_pairs_hook`.
Hook = Callable[[list[tuple[str, Any]]], Any]
_SHOWN_SERIES = 3
_SHOWN_VALUE = 60  # characters of an unusable value shown
_WARNINGS_KEY = b'"warnings"'
_INFOS_KEY = b'"infos"'
# How Prometheus starts an info-level annotation (`annotations.PromQLInfo`), which 2.47 to
# 2.53 answered among the warnings.
_INFO_PREFIX = "PromQL info:"
_NUMERIC_TYPES = ("vector", "scalar")
_THROTTLED = (429, 503)  # the answers whose Retry-After is heeded
# Where Prometheus puts the result type: `{"status":"success","data":{"resultType":"…"`,
# and VictoriaMetrics, with `"isPartial":true|false,` between `status` and `data`.
_HEAD_BYTES = 128
_RESULT_TYPE_HEAD = re.compile(
    rb'\s*\{\s*"status"\s*:\s*"success"\s*,(?:\s*"isPartial"\s*:\s*(true|false)\s*,)?'
    rb'\s*"data"\s*:\s*\{\s*"resultType"\s*:\s*"(\w+)"'
)


class Notes(NamedTuple):
    """What the client drops of an answer: its `data.resultType` (None if it has none),
    its warnings (without the info-level notes older versions listed among them), whether
    it is marked partial (`"isPartial": true`) and its info-level notes (`infos`, and those
    listed among the warnings)."""

    result_type: str | None
    warnings: tuple[str, ...] = ()
    partial: bool = False
    infos: tuple[str, ...] = ()
    # Seconds a 429 or 503 answer asks to wait before the next attempt (`Retry-After`).
    retry_after: float | None = None


def result_notes(response: requests.Response) -> Notes:
    """The `Notes` of `response`.

    Prometheus writes `{"status":"success","data":{"resultType":"vector",...` first, and
    VictoriaMetrics `{"status":"success","isPartial":false,"data":{"resultType":...`:
    read there, a grouped answer of thousands of series is not decoded twice (unless it has
    warnings or infos, which are rare). Any other layout (a proxy that reorders keys) is
    decoded in full.
    """
    found: str | None = None
    warnings: tuple[str, ...] = ()
    infos: tuple[str, ...] = ()
    partial = False
    if response.status_code in _THROTTLED:
        return Notes(None, retry_after=retry_after(response.headers.get("Retry-After")))
    if response.status_code == 200:
        content = response.content
        head = _RESULT_TYPE_HEAD.match(content[:_HEAD_BYTES])
        body: Any = None
        if head is not None:
            partial = head.group(1) == b"true"
            found = head.group(2).decode("ascii")
        if head is None or _WARNINGS_KEY in content or _INFOS_KEY in content:
            try:
                body = response.json()
            except ValueError:
                body = None
        if isinstance(body, dict):
            data = body.get("data")
            if head is None and isinstance(data, dict):
                result_type = data.get("resultType")
                found = result_type if isinstance(result_type, str) else None
            if head is None:
                partial = body.get("isPartial") is True
            noted = [str(w) for w in _listed(body, "warnings")]
            warnings = tuple(w for w in noted if not w.startswith(_INFO_PREFIX))
            infos = tuple(w for w in noted if w.startswith(_INFO_PREFIX))
            infos += tuple(str(i) for i in _listed(body, "infos"))
    return Notes(found, warnings, partial, infos)


def retry_after(text: str | None) -> float | None:
    """The seconds a `Retry-After` header asks to wait (a number of seconds, or an HTTP
    date), 0 for a date past; None without a header or for one that reads as neither."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _listed(body: dict[str, Any], key: str) -> list[Any]:
    listed = body.get(key)
    return listed if isinstance(listed, list) else []


def refuse_warnings(
    promql: str, warnings: Sequence[str], what: str = "query", *, partial: bool = False
) -> None:
    """Raise `QueryError` when the answer to `promql` is marked partial or came with
    `warnings` (not counting the info-level notes older versions listed among them)."""
    if partial:
        raise QueryError(
            f'{what} {promql!r}: the answer is marked as partial ("isPartial": true, as '
            "VictoriaMetrics' cluster answers when some of its storage nodes could not be "
            "read), so its data is incomplete and it is not used"
        )
    if warnings:
        shown = "; ".join(warnings[:_SHOWN_SERIES])
        more = f" and {len(warnings) - _SHOWN_SERIES} more" if len(warnings) > _SHOWN_SERIES else ""
        raise QueryError(
            f"{what} {promql!r}: Prometheus answered with warnings, so its data may be "
            f"partial, and it is not used: {shown}{more}"
        )


def single_value(promql: str, result_type: str | None, result: Any) -> float:
    """The one finite value in `custom_query`'s result, or a `QueryError` saying why not.

    `result_type` is the answer's `resultType`; it must be the expression's own type
    (vector or scalar), or, when that type cannot be worked out, one of those two.
    """
    expected = _expression_type(promql)
    if expected == "string":
        raise QueryError(f"query {promql!r} returns a string, not a number")
    if expected == "matrix" or (expected is None and result_type == "matrix"):
        raise QueryError(
            f"query {promql!r} returns a range vector (matrix); a check needs one instant "
            "value: wrap it in a function such as avg_over_time(...[5m]) or rate(...[5m])"
        )
    if result_type not in _NUMERIC_TYPES or (expected is not None and result_type != expected):
        got = "no resultType" if result_type is None else f"a {result_type} result"
        wanted = f"a {expected}" if expected else "a vector or a scalar"
        raise QueryError(
            f"query {promql!r}: Prometheus answered with {got} where the expression gives "
            f"{wanted}; a value of the wrong type is never used (is a proxy or an "
            "incompatible server answering in Prometheus' place?)"
        )
    if result_type == "scalar":
        if not _is_sample(result):
            raise QueryError(f"query {promql!r}: unexpected scalar shape from Prometheus")
        return _finite(promql, result[1], "the scalar result")
    if not isinstance(result, list) or not all(isinstance(s, dict) for s in result):
        raise QueryError(f"query {promql!r}: unexpected result shape from Prometheus")
    if not result:
        raise QueryError(
            f"query {promql!r} returned no series: check the metric name and label matchers "
            "(and that the series has a sample within the last 5 minutes)"
        )
    if len(result) > 1:
        shown = ", ".join(_labels(s.get("metric")) for s in result[:_SHOWN_SERIES])
        more = f" and {len(result) - _SHOWN_SERIES} more" if len(result) > _SHOWN_SERIES else ""
        raise QueryError(
            f"query {promql!r} returned {len(result)} series ({shown}{more}); a check needs "
            "exactly one: aggregate with sum()/max()/avg() or add label matchers"
        )
    series = result[0]
    value = series.get("value")
    if not _is_sample(value):
        raise QueryError(f"query {promql!r}: unexpected sample shape from Prometheus")
    return _finite(promql, value[1], _labels(series.get("metric")))


def series_set(promql: str, result_type: str | None, result: Any) -> SeriesSet:
    """Every series of an instant-vector answer, values as floats (NaN and ±Inf included:
    each target's `pick` judges its own).

    A series with labels but no number (a native histogram, a value that is not a sample)
    is kept `unusable`, saying why: it fails the check of the target that picks it alone.
    A series without labels, or not an object, belongs to no target: the answer is not
    Prometheus' shape, and fails as a whole (`QueryError`)."""
    if result_type != "vector":
        got = "no resultType" if result_type is None else f"a {result_type} result"
        raise QueryError(
            f"grouped query {promql!r}: Prometheus answered with {got}; a query shared with "
            "group_by must give an instant vector, one series per target (e.g. sum by (job) ...)"
        )
    shape = QueryError(f"grouped query {promql!r}: unexpected result shape from Prometheus")
    if not isinstance(result, list):
        raise shape
    series: list[tuple[Labels, float]] = []
    unusable: dict[int, str] = {}
    for s in result:
        if isinstance(s, tuple):  # decoded by `sample_pairs`
            series.append(s)
            continue
        try:
            labels = dict(s["metric"])
        except (TypeError, KeyError, ValueError, IndexError, AttributeError):
            raise shape from None
        value = s.get("value")
        try:
            if not _is_sample(value):  # "12" read as its "2"; [t, true] as 1.0
                raise ValueError(value)
            series.append((labels, float(value[1])))
        except ValueError:
            unusable[len(series)] = _no_number(s)
            series.append((labels, math.nan))
    return SeriesSet(query=promql, series=series, unusable=unusable)


def _no_number(series: dict[str, Any]) -> str:
    """Why a series of a grouped answer gives no number, for the target that picks it."""
    if "histogram" in series:
        return (
            "a native histogram, not a number: read a number of it with histogram_count(), "
            "histogram_sum() or histogram_quantile()"
        )
    if "value" not in series:
        keys = ", ".join(sorted(series))
        keys = keys if len(keys) <= _SHOWN_VALUE else f"{keys[:_SHOWN_VALUE]}…"
        return f"no value in the series from Prometheus (it has: {keys})"
    shown = repr(series["value"])
    shown = shown if len(shown) <= _SHOWN_VALUE else f"{shown[:_SHOWN_VALUE]}…"
    return f"its value {shown} is not a sample (time, number) from Prometheus"


def sample_pairs(like: Sequence[tuple[Labels, float]] = ()) -> Hook:
    """A JSON object hook for an instant-vector answer: a series, `{"metric": {...},
    "value": [t, "v"]}`, becomes `(labels, float(v))`; any other object, or one whose value
    does not convert, stays the dict `json` makes (and `series_set` judges it as before).

    A series is told apart by its types: labels map names to strings, a series maps
    "metric" to an object and "value" to an array. The labels of the N-th series are the
    labels dict of the N-th series of `like` (the previous answer to the query) when equal:
    an answer with the same series as the one before makes no new label dict to keep.
    """
    position = 0

    def hook(pairs: list[tuple[str, Any]]) -> Any:
        nonlocal position
        if len(pairs) == 2:  # no dict of the two first: 10,000 of them per answer
            (first, one), (second, other) = pairs
            labels, value = (
                (one, other)
                if (first, second) == ("metric", "value")
                else (other, one)
                if (first, second) == ("value", "metric")
                else (None, None)
            )
            # `_is_sample`, inlined (10,000 series an answer): a (time, text) pair
            if (
                isinstance(labels, dict)
                and isinstance(value, list)
                and len(value) == 2
                and isinstance(value[1], str)
                and isinstance(value[0], (int, float))
            ):
                try:
                    sample = labels, float(value[1])
                except ValueError:
                    pass
                else:
                    position += 1
                    return sample
        found = dict(pairs)
        if isinstance(found.get("metric"), dict):
            # A series left as a dict (`series_set` keeps it as unusable, at its place):
            # the next series is the next of `like`, whose labels it may reuse.
            position += 1
            return found
        if position < len(like) and like[position][0] == found:
            return like[position][0]  # `found` (the same labels) is dropped at once
        return found

    return hook


def _finite(promql: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise QueryError(f"query {promql!r}: {what} is {text!r}, not a number") from None
    if math.isnan(value):
        raise QueryError(
            f"query {promql!r}: {what} is NaN (often 0/0, e.g. a ratio of rates with no "
            "traffic); make the query defined for that case"
        )
    if math.isinf(value):
        raise QueryError(
            f"query {promql!r}: {what} is {text} (often a division by zero); "
            "make the query defined for that case"
        )
    return value


def _is_sample(value: Any) -> TypeGuard[list[Any]]:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int | float)
        and isinstance(value[1], str)
    )


@lru_cache(maxsize=4096)
def _expression_type(promql: str) -> str | None:
    """The type PromQL gives `promql`: "vector", "scalar", "matrix", "string", or None.

    None when the text does not parse offline; cached, since every check asks again at
    every evaluation.
    """
    try:
        return _type_of(promql_parser.parse(promql))
    except ValueError:
        return None


def _type_of(expr: Any) -> str | None:
    """The value type of a parsed expression (Prometheus' own typing rules)."""
    if isinstance(expr, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return _type_of(expr.expr)
    if isinstance(expr, promql_parser.NumberLiteral):
        return "scalar"
    if isinstance(expr, promql_parser.StringLiteral):
        return "string"
    if isinstance(expr, promql_parser.VectorSelector | promql_parser.AggregateExpr):
        return "vector"
    if isinstance(expr, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
        return "matrix"
    if isinstance(expr, promql_parser.Call):
        returned = expr.func.return_type
        return next((name for kind, name in _TYPE_NAMES if kind == returned), None)
    if isinstance(expr, promql_parser.BinaryExpr):
        sides = (_type_of(expr.lhs), _type_of(expr.rhs))
        if None in sides:
            return None
        return "scalar" if sides == ("scalar", "scalar") else "vector"
    return None


# promql-parser's ValueType members compare equal but do not hash.
_TYPE_NAMES = (
    (promql_parser.ValueType.Vector, "vector"),
    (promql_parser.ValueType.Scalar, "scalar"),
    (promql_parser.ValueType.Matrix, "matrix"),
    (promql_parser.ValueType.String, "string"),
)


def _labels(metric: Any) -> str:
    """`name{a="1", b="2"}`, the way Prometheus shows a series."""
    if not isinstance(metric, dict):
        return "{}"
    name = str(metric.get("__name__", ""))
    pairs = ", ".join(f"{k}={str(v)!r}" for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{pairs}}}"
