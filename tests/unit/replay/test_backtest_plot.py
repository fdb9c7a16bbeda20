"""The backtest's picture: each check against its target, gaps in red, counts and actions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from autoscaler.core.model import Check, Strategy
from autoscaler.replay import backtest_plot
from autoscaler.replay.backtest import Options, run_backtest
from autoscaler.replay.backtest_plot import backtest_figure
from autoscaler.replay.plot import PlotError, render_html, write
from tests.unit.replay.fakes import HOUR, QUERY, T0, FakeRange, load, policy


def test_each_policy_gets_its_checks_against_their_targets_and_its_counts() -> None:
    latency = Check(name="p95", strategy=Strategy.TARGET_VALUE, query="p95", target=0.25)
    web = policy()
    api = policy("api", query="p95", checks=(latency,), interval=timedelta(seconds=15))
    source = FakeRange(
        {
            QUERY: load({range(0, 20): 35.0, range(40, 60): 75.0}),
            "p95": load({range(0, 60): 0.2}),
            "count": load({range(0, 60): 3.0}),
        }
    )
    options = Options(start=T0, end=T0 + HOUR, count_query="count", series=True)
    result = run_backtest([web, api], source, options)
    figure = backtest_figure(result, {"web": web, "api": api})

    assert len(figure.times) == 240 and figure.times[1] == 15.0  # the finest step: api's
    titles = [panel.title for panel in figure.panels]
    assert titles == [
        "web: check rps (per-instance)",
        "web: instances",
        "api: check p95 (target-value)",
        "api: instances",
    ]
    rps, counts = figure.panels[0], figure.panels[1]
    value, target, gap = rps.series
    assert value.values[:4] == [35.0] * 4  # web's minute repeated on the 15 s grid
    assert target.label == "target 10 × instances" and target.values[0] == 10 * 4
    # The gap holds the last value and raises the red band; the band is down elsewhere.
    assert value.values[30 * 4] == 35.0 and gap.values[30 * 4] > 0 and gap.values[0] == 0
    assert [s.label for s in counts.series] == ["simulated", "desired", "recorded"]
    assert counts.series[2].values[0] == 3.0
    (ups,) = [m for m in counts.marks if m.label == "scale up"]
    assert len(ups.times) == len([c for c in result.policies[0].changes if c.new > c.old])
    assert "rps: 75 / 10 per instance → 8" in " ".join(ups.notes)
    p95 = figure.panels[2]
    assert [s.label for s in p95.series] == ["p95 (as read)", "target 0.25"]  # no gap: no band
    assert figure.table[0][0] == "policy" and [row[0] for row in figure.table[1:]] == [
        "web",
        "api",
    ]
    page = render_html(figure)
    assert "<script" not in page and "web: check rps" in page


def test_only_the_first_policies_are_drawn_and_the_subtitle_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = FakeRange({QUERY: load({range(0, 60): 35.0})})
    policies = [policy(f"p{i}") for i in range(3)]
    result = run_backtest(policies, source, Options(start=T0, end=T0 + HOUR, series=True))
    monkeypatch.setattr(backtest_plot, "MAX_POLICIES", 2)
    figure = backtest_figure(result, {p.name: p for p in policies})
    assert len(figure.panels) == 4 and "2 of 3 policies (the first 2" in figure.subtitle
    assert len(figure.table) == 4  # every policy is in the table


def test_series_are_kept_only_when_asked_and_never_reach_the_json() -> None:
    source = FakeRange({QUERY: load({range(0, 60): 35.0})})
    plain = run_backtest([policy()], source, Options(start=T0, end=T0 + HOUR))
    kept = run_backtest([policy()], source, Options(start=T0, end=T0 + HOUR, series=True))
    assert plain.policies[0].series is None
    series = kept.policies[0].series
    assert series is not None and len(series.count) == 60 and series.recorded is None
    assert kept.to_dict() == plain.to_dict()
    assert list(series.checks["rps"])[:2] == [35.0, 35.0] and list(series.desired)[:1] == [4.0]


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_a_backtest_of_no_policy_is_nothing_to_plot_not_a_matplotlib_traceback(
    tmp_path: Path, suffix: str
) -> None:
    # None enabled, every file invalid, or discovery found nothing: no panel to draw.
    result = run_backtest([], FakeRange({}), Options(start=T0, end=T0 + HOUR, series=True))
    figure = backtest_figure(result, {})
    with pytest.raises(PlotError, match="nothing to plot: no policy was backtested"):
        write(figure, tmp_path / f"plot{suffix}")
    assert "nothing to plot: no policy was backtested" in render_html(figure)
