"""The single values of the policy format as annotated types, each with its validator and
its JSON Schema: durations, ISO 8601 times, names, PromQL queries, cron expressions, time
zones, threshold steps' changes and Nomad namespaces.

Kept apart from the models of `schema`, which compose these types: a value's rules (and
its messages) are in one place whichever field holds it. A PromQL error carries where in
the query it is (`QUERY_OFFSET`), for the loader to name the file's line and column.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, PlainValidator, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from autoscaler.core.durations import parse_duration
from autoscaler.core.ranges import MAX_COUNT, MAX_PERCENT
from autoscaler.policy import promql

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
CHANGE_PATTERN = r"^[+-](\d+(\.0+)?|\d+(\.\d+)?%)$"  # a count in whole instances
DURATION_PATTERN = r"^(0|(\d+(ms|y|w|d|h|m|s))+)$"  # Prometheus syntax; unit order checked in code
# ISO 8601 date and time, the offset optional (RFC 3339's `date-time` format requires it).
INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$"
_INSTANT = re.compile(INSTANT_PATTERN)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
QUERY_OFFSET = "query_offset"  # a PromQL error's context: where in the query it is
_MAX_QUERY_CHARS = 4000  # the Rust PromQL parser recurses; bound its input
_MAX_QUERY_DEPTH = 100
# A Nomad target's namespace: one namespace, never a wildcard (Nomad's own names are
# `^[a-zA-Z0-9-]{1,128}$`; only the wildcard is refused here, the rest is Nomad's to judge).
NAMESPACE_PATTERN = r"^[^*]+$"
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("policy", message)


def _duration(value: object) -> str:
    try:
        parse_duration(value)  # type: ignore[arg-type]  # it rejects non-strings itself
    except ValueError as exc:
        raise _fail(str(exc)) from None
    return str(value)


def _nesting(query: str) -> int:
    """How deep the query's brackets nest, or at least as deep as the limit: never more
    than the openers, so a query with few of them (every real one) is not walked."""
    openers = query.count("(") + query.count("[") + query.count("{")
    if openers <= _MAX_QUERY_DEPTH:
        return openers
    depth = deepest = 0
    for char in query:
        depth += (char in "([{") - (char in ")]}")
        deepest = max(deepest, depth)
    return deepest


def _promql(query: str) -> str:
    if len(query) > _MAX_QUERY_CHARS or _nesting(query) > _MAX_QUERY_DEPTH:
        raise _fail(
            f"query is too large to check (over {_MAX_QUERY_CHARS} characters or "
            f"{_MAX_QUERY_DEPTH} nested brackets): use a recording rule instead"
        )
    error = promql.parse_error(query)
    if error is not None:
        # The offset lets the loader name the file's line and column (`QUERY_OFFSET`).
        offset = promql.error_offset(query, error)
        if error == "invalid promql query":  # the parser's word for any syntax error
            ends = offset is not None and offset >= len(query.rstrip())
            error = "the query ends too early" if ends else "syntax error"
        context = None if offset is None else {QUERY_OFFSET: offset}
        raise PydanticCustomError("policy", f"query is not valid PromQL: {error}", context)
    return query


def _cron(expression: str) -> str:
    # Imported here: croniter is a tenth of `validate`'s start-up, and most policies
    # have no recurring schedule.
    from croniter import croniter  # noqa: PLC0415

    from autoscaler.core.schedules import ever_fires  # noqa: PLC0415

    fields = expression.split()
    try:
        valid = (len(fields) == 5 or expression.strip() in _CRON_MACROS) and bool(
            croniter.is_valid(expression)
        )
    except Exception:
        valid = False
    if not valid:
        raise _fail(
            f"{expression!r} is not a cron expression: use five fields "
            "'minute hour day-of-month month day-of-week', e.g. '0 8 * * 1-5'"
        )
    if not ever_fires(expression):
        raise _fail(
            f"{expression!r} never fires: no date matches it (e.g. day 30 of month 2); "
            "check day-of-month, month and day-of-week"
        )
    return expression


def _namespace(name: str) -> str:
    """A Nomad target names one namespace: its scale calls go to one job in one namespace.

    `*` is Nomad's "every namespace" for listing and searching (and an ACL rule's glob),
    which a scale request cannot use; discovery can (a template's `for_each.nomad`)."""
    if "*" in name:
        raise _fail(
            f"{name!r} is a wildcard, but a Nomad target is one job in one namespace: "
            "write the job's namespace (to scale groups found in every namespace, use a "
            'template with for_each.nomad.namespace: "*" and namespace: "{namespace}" '
            "in its target)"
        )
    return name


def _change(text: str) -> str:
    """A threshold step's change stays within the count and percent limits."""
    percent = text.endswith("%")
    limit = MAX_PERCENT if percent else MAX_COUNT
    if abs(float(text.rstrip("%"))) > limit:
        largest = f"{int(limit)}%" if percent else str(int(limit))
        raise _fail(f"{text!r} changes by more than {largest}: use a smaller change")
    return text


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except Exception:
        raise _fail(
            f"unknown timezone {name!r}: use an IANA name such as Europe/Paris or UTC"
        ) from None
    return name


def _instant(value: object) -> datetime:
    """An ISO 8601 time, as YAML gives it (datetime) or as text: in UTC when it has an
    offset, else as written (naive), to be read in the schedule's zone (`rules`)."""
    if isinstance(value, str):
        # The spellings the JSON Schema's pattern allows, and only those (fromisoformat
        # takes more: a date alone, `20261127T060000`, a comma fraction...).
        if _DATE.fullmatch(value):
            raise _fail(_date_only(value))
        wrong = f"{value!r} is not an ISO 8601 time: write e.g. 2026-11-27T06:00:00+01:00"
        if not _INSTANT.fullmatch(value):
            raise _fail(wrong)
        try:
            value = datetime.fromisoformat(value)
        except ValueError:  # a month 13, a day 31 of November...
            raise _fail(wrong) from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return value.replace(tzinfo=None)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise _fail(
                f"{value.isoformat()} is outside the years 1 to 9999 in UTC: use a time within them"
            ) from None
    if isinstance(value, date):
        raise _fail(_date_only(str(value)))
    raise _fail("expected an ISO 8601 time such as 2026-11-27T06:00:00+01:00")


def _date_only(value: str) -> str:
    return (
        f"{value} is a date: add a time, e.g. {value}T00:00:00 (in the schedule's timezone) "
        f"or {value}T00:00:00+01:00"
    )


Duration = Annotated[
    str,
    PlainValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m"]}),
]
Instant = Annotated[
    datetime,
    PlainValidator(_instant),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": INSTANT_PATTERN,
            "examples": ["2026-11-27T06:00:00+01:00", "2026-11-27T06:00:00"],
        }
    ),
]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
NomadNamespace = Annotated[
    str,
    AfterValidator(_namespace),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": NAMESPACE_PATTERN}),
]
PromQL = Annotated[str, AfterValidator(_promql)]
Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
ChangeText = Annotated[str, StringConstraints(pattern=CHANGE_PATTERN), AfterValidator(_change)]
