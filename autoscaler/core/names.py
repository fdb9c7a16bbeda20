"""Names in one line of text, for summaries and log lines that must stay short."""

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
