"""Names and counts in one line of text, for summaries and log lines that must stay short."""

from __future__ import annotations

from collections.abc import Sequence

NAMES_SHOWN = 20  # names listed in a summary line; the rest are counted


def name_list(names: Sequence[str], limit: int = NAMES_SHOWN) -> str:
    """`names` for a one-line summary: the first `limit`, then how many more (a folder of
    10,000 policies must not print a 100 KB line); "none" when empty."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    rest = len(names) - limit
    return f"{shown} and {rest:,} more" if rest > 0 else shown


def noun(count: int, singular: str, plural: str | None = None) -> str:
    """`singular` for a count of 1, else `plural` (default: `singular` + "s"): what follows
    a count, `1 policy` and `0 policies`, never `1 policies`."""
    if count == 1:
        return singular
    return singular + "s" if plural is None else plural


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """`1 policy`, `2 policies`: `count` and its `noun`."""
    return f"{count} {noun(count, singular, plural)}"
