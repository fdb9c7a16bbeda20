"""Plots: a self-contained HTML page always, PNG/SVG through the optional matplotlib."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from autoscaler.replay.plot import Figure, PlotError, downsample, nice_ticks, render_html, write
from autoscaler.replay.recommended import recommended_policy
from autoscaler.replay.simulate import Setup, simulate
from autoscaler.replay.simulate_plot import simulation_figure
from autoscaler.replay.trace import Trace


def _figure() -> Figure:
    trace = Trace("burst.csv", [0.0, 600.0, 1200.0], [20.0, 90.0, 30.0], 600.0, 2400.0)
    setup = Setup(capacity=10.0)
    return simulation_figure(simulate(trace, setup, [recommended_policy(10.0, 0.7)]))


def test_html_page_is_self_contained_and_shows_panels_actions_and_scores() -> None:
    page = render_html(_figure())
    assert page.startswith("<!doctype html>")
    assert "<script" not in page and "src=" not in page and "href=" not in page
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * 2
    assert "Load" in page and "Instances" in page
    assert "recommended scale up" in page and "load: " in page  # marks with their reasons
    assert "<th>instance-h</th>" in page and "<td>hpa</td>" in page


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_png_and_svg_go_through_matplotlib(tmp_path: Path, suffix: str, magic: bytes) -> None:
    path = write(_figure(), tmp_path / f"plot{suffix}")
    assert path.read_bytes().startswith(magic)


def test_missing_matplotlib_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(PlotError, match=r"pip install 'autoscaler\[plot\]'.*\.html"):
        write(_figure(), tmp_path / "plot.png")
    write(_figure(), tmp_path / "plot.html")  # needs nothing


def test_unknown_format_and_unwritable_file_are_plot_errors(tmp_path: Path) -> None:
    with pytest.raises(PlotError, match=r"use one of \.png, \.svg, \.html"):
        write(_figure(), tmp_path / "plot.jpg")
    with pytest.raises(PlotError, match="cannot write the plot"):
        write(_figure(), tmp_path / "missing" / "plot.html")


def test_nice_ticks_and_downsampling() -> None:
    assert nice_ticks(0, 47) == [0, 10, 20, 30, 40]
    assert nice_ticks(0, 0.9) == [0, 0.2, 0.4, 0.6, 0.8]
    times, values = downsample(list(range(10)), [1.0] * 5 + [3.0] * 5, 2)
    assert (times, values) == ([0, 5], [1.0, 3.0])
