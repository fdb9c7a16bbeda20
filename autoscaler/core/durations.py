"""Prometheus duration syntax (`90s`, `1m30s`, `1h`, `2d`) <-> `timedelta`.

A policy's durations are at most `ranges.MAX_DURATION` (1y), a replay's relative times
a longer `limit`: longer ones are rejected here, while the text is still a number of
milliseconds, before `timedelta` can overflow.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache

from autoscaler.core.ranges import MAX_DURATION

_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}
_ORDER = ["y", "w", "d", "h", "m", "s", "ms"]
_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_WHOLE = re.compile(r"^(?:0|(?:\d+(?:ms|y|w|d|h|m|s))+)$")  # "0" alone, as Prometheus
_SYNTAX = "use Prometheus syntax such as 30s, 5m, 1h30m or 0s"


def parse_duration(
    text: str, *, limit: timedelta = MAX_DURATION, what: str = "a duration"
) -> timedelta:
    """Parse a Prometheus duration of at most `limit` (a policy's: 1y); raise ValueError
    saying what to write. `what` names the value in the message when it is too long."""
    if not isinstance(text, str):  # e.g. `30` without a unit; a list is not shown whole
        shown = repr(text) if isinstance(text, int | float) else f"a {type(text).__name__}"
        if text == 0 and not isinstance(text, bool):  # YAML reads an unquoted 0 as a number
            raise ValueError(f'{shown} is not a duration: write "0" (quoted) or 0s')
        raise ValueError(f"{shown} is not a duration: {_SYNTAX}")
    return _parse(text, limit, what)


@lru_cache(maxsize=1024)
def _parse(text: str, limit: timedelta, what: str) -> timedelta:
    """`parse_duration` of a text; cached, since 10,000 policy files say `30s` alike."""
    if not _WHOLE.match(text):
        raise ValueError(f"{_quoted(text)} is not a duration: {_SYNTAX}")
    if text == "0":  # Prometheus' ParseDuration takes a bare zero too
        return timedelta(0)
    found = _PART.findall(text)
    if any(len(n.lstrip("0")) > 15 for n, _ in found):  # > 31,000 years even in ms
        raise ValueError(_too_long(text, limit, what))
    parts = [(int(n), unit) for n, unit in found]
    units = [unit for _, unit in parts]
    positions = [_ORDER.index(u) for u in units]
    if positions != sorted(positions) or len(set(units)) != len(units):
        raise ValueError(
            f"{_quoted(text)} is not a duration: units must go from largest to smallest"
        )
    ms = sum(n * _UNITS_MS[u] for n, u in parts)
    if ms > limit // timedelta(milliseconds=1):
        raise ValueError(_too_long(text, limit, what))
    return timedelta(milliseconds=ms)


def _too_long(text: str, limit: timedelta, what: str) -> str:
    return f"{_quoted(text)} is too long: {what} is at most {limit.days // 365}y ({limit.days}d)"


def _quoted(text: str) -> str:
    """`text` quoted for a message, cut short when it is long."""
    return repr(text) if len(text) <= 40 else repr(text[:20] + "…")


@lru_cache(maxsize=1024)
def format_duration(value: timedelta) -> str:
    """Render a timedelta back in Prometheus syntax (`0s` for zero).

    Cached: reasons show the same few windows, cooldowns and leads in every decision."""
    ms = round(value.total_seconds() * 1000)
    if ms <= 0:
        return "0s"
    out = []
    for unit in ["d", "h", "m", "s", "ms"]:
        size = _UNITS_MS[unit]
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


def human_seconds(value: timedelta) -> str:
    """A short human rendering used in reasons: `40 s`, `4 min 10 s`, `1 h 5 min`."""
    seconds = max(0, round(value.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
