"""The summary lines of the CLI."""

from __future__ import annotations

from autoscaler.cli.report import name_list


def test_a_short_list_is_shown_whole_and_an_empty_one_says_none() -> None:
    assert name_list(["a", "b"]) == "a, b"
    assert name_list([]) == "none"


def test_a_long_list_shows_the_first_names_and_counts_the_rest() -> None:
    names = [f"svc{i}" for i in range(10_000)]
    line = name_list(names)
    assert line.startswith("svc0, svc1, ") and line.endswith("svc19 and 9,980 more")
    assert len(line) < 250
