"""Prometheus duration syntax (`90s`, `1m30s`, `1h`, `2d`) <-> `timedelta`."""

from __future__ import annotations

import re
from datetime import timedelta

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
_WHOLE = re.compile(r"^(?:\d+(?:ms|y|w|d|h|m|s))+$")


def parse_duration(text: str) -> timedelta:
    """Parse a Prometheus duration; raise ValueError with the accepted syntax otherwise."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(
            f"{text!r} is not a duration: use Prometheus syntax such as 30s, 5m, 1h30m or 0s"
        )
    parts = [(int(n), unit) for n, unit in _PART.findall(text)]
    units = [unit for _, unit in parts]
    positions = [_ORDER.index(u) for u in units]
    if positions != sorted(positions) or len(set(units)) != len(units):
        raise ValueError(f"{text!r} is not a duration: units must go from largest to smallest")
    return timedelta(milliseconds=sum(n * _UNITS_MS[u] for n, u in parts))


def format_duration(value: timedelta) -> str:
    """Render a timedelta back in Prometheus syntax (`0s` for zero)."""
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
