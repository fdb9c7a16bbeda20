"""Pictures of a replay: time series in stacked panels, as PNG/SVG or a self-contained page.

A `Figure` is plain data (panels of series and action marks over one time axis), so any
replay (`simulate`, `backtest`) can describe what to draw without knowing how. `write`
picks the renderer from the file name: `.html` is a page with inline SVG drawn here, with
no script, no CDN and no network; `.png` and `.svg` go through matplotlib, an optional
extra (`pip install 'autoscaler[plot]'`), imported only then.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from autoscaler.errors import AutoscalerError

FORMATS = (".png", ".svg", ".html")
MAX_POINTS = 2000  # per series: more cannot be seen, and would make pages heavy


class PlotError(AutoscalerError):
    """A plot cannot be written: unknown format, matplotlib missing, or the file unwritable."""


@dataclass(frozen=True)
class Series:
    """One line; `step` draws it as a staircase (counts), else as a polyline (rates)."""

    label: str
    values: Sequence[float]
    color: str
    step: bool = False
    width: float = 1.5
    dashed: bool = False


@dataclass(frozen=True)
class Marks:
    """Points marked on a panel (scaling actions), each with a tooltip in the HTML page."""

    label: str
    times: Sequence[float]  # seconds, like Figure.times
    values: Sequence[float]
    color: str
    symbol: str = "^"  # "^" up, "v" down
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    series: Sequence[Series]
    marks: Sequence[Marks] = ()


@dataclass(frozen=True)
class Figure:
    """Panels sharing one time axis (`times`, seconds from the start, one per value)."""

    title: str
    times: Sequence[float]
    panels: Sequence[Panel]
    subtitle: str = ""
    table: Sequence[Sequence[str]] = field(default=())  # header row first; shown in HTML
    # Why there is no panel, when there is none: PNG and SVG refuse to draw nothing.
    empty: str = "the figure has no panel"


def option_problem(name: str) -> str | None:
    """Why `--plot NAME` is bad usage, by its name alone (`simulate` and `backtest` say it
    before any work, in the same words, with their other usage errors: exit 2); None when
    its suffix names a format `write` knows."""
    if Path(name).suffix.lower() in FORMATS:
        return None
    return f"--plot {name}: unknown plot format; use a file name ending in {', '.join(FORMATS)}"


def write(figure: Figure, path: str | Path) -> Path:
    """Render `figure` to `path` in the format its suffix names; return the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise PlotError(f"{path}: unknown plot format; use one of {', '.join(FORMATS)}")
    try:
        if suffix == ".html":
            path.write_text(render_html(figure), encoding="utf-8")
        else:
            _write_matplotlib(figure, path)
    except OSError as exc:
        raise PlotError(f"{path}: cannot write the plot: {exc.strerror or exc}") from None
    return path


# --- data shaping -------------------------------------------------------------------------


def downsample(
    times: Sequence[float], values: Sequence[float], limit: int
) -> tuple[list[float], list[float]]:
    """At most `limit` points: the mean of each run of consecutive points (first time)."""
    n = len(values)
    if n <= limit:
        return list(times), list(values)
    size = math.ceil(n / limit)
    out_t, out_v = [], []
    for i in range(0, n, size):
        chunk = values[i : i + size]
        out_t.append(times[i])
        out_v.append(sum(chunk) / len(chunk))
    return out_t, out_v


def time_unit(span_seconds: float) -> tuple[float, str]:
    """Seconds per axis unit and its name: minutes, hours or days, whichever reads best."""
    if span_seconds <= 3 * 3600:
        return 60.0, "minutes"
    if span_seconds <= 4 * 86400:
        return 3600.0, "hours"
    return 86400.0, "days"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if not high > low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.3g}"


# --- HTML with inline SVG -----------------------------------------------------------------

_WIDTH, _PLOT_HEIGHT, _LEFT, _RIGHT, _BOTTOM = 1000, 180, 70, 20, 40
_CHAR, _ROW = 7.0, 16  # legend: width of a character and height of a row, in pixels


def render_html(figure: Figure) -> str:
    """A complete HTML page: title, every panel as inline SVG, and the table, if any."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(figure.title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
        "table{border-collapse:collapse;margin-top:12px}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}"
        "svg{display:block;margin:8px 0}.sub{color:#555}</style>",
        "</head><body>",
        f"<h1>{html.escape(figure.title)}</h1>",
    ]
    if figure.subtitle:
        parts.append(f'<p class="sub">{html.escape(figure.subtitle)}</p>')
    if not figure.panels:
        parts.append(f"<p>nothing to plot: {html.escape(figure.empty)}</p>")
    for panel in figure.panels:
        parts.append(render_svg_panel(figure, panel))
    if figure.table:
        header, *rows = figure.table
        parts.append("<table><thead><tr>")
        parts.extend(f"<th>{html.escape(cell)}</th>" for cell in header)
        parts.append("</tr></thead><tbody>")
        for row in rows:
            cells = "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_svg_panel(figure: Figure, panel: Panel) -> str:
    """One panel as a standalone `<svg>` element: axes, grid, series, marks and legend."""
    times = figure.times
    span = (times[-1] - times[0]) if len(times) > 1 else 1.0
    unit, unit_name = time_unit(span)
    t0 = times[0] if times else 0.0
    shaped = [downsample(times, s.values, MAX_POINTS) for s in panel.series]
    values = [v for _, vs in shaped for v in vs] + [v for m in panel.marks for v in m.values]
    high = max([*values, 0.0]) * 1.05 or 1.0
    y_ticks = nice_ticks(0.0, high)
    high = max(high, y_ticks[-1])
    legend, rows = _legend(panel)
    top = 20 + _ROW * rows + 14
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _PLOT_HEIGHT
    height = top + plot_h + _BOTTOM

    def x(t: float) -> float:
        return _LEFT + (t - t0) / (span or 1.0) * plot_w

    def y(v: float) -> float:
        return top + plot_h - v / high * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" role="img" font-family="sans-serif" '
        f'aria-label="{html.escape(panel.title)}" font-size="12">',
        f'<text x="{_LEFT}" y="18" font-weight="bold">{html.escape(panel.title)}'
        f"{' (' + html.escape(panel.unit) + ')' if panel.unit else ''}</text>",
    ]
    for tick in y_ticks:
        out.append(
            f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            'stroke="#e5e5e5"/>'
            f'<text x="{_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{_label(tick)}</text>'
        )
    for tick in nice_ticks(0.0, span / unit, 8):
        px = x(t0 + tick * unit)
        bottom = top + plot_h
        out.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{bottom}" stroke="#f0f0f0"/>'
            f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{_label(tick)}</text>'
        )
    out.append(
        f'<text x="{_LEFT + plot_w / 2}" y="{height - 4}" text-anchor="middle" '
        f'fill="#555">{unit_name}</text>'
        f'<rect x="{_LEFT}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/>'
    )
    for s, (ts, vs) in zip(panel.series, shaped, strict=True):
        points = _polyline(ts, vs, s.step, x, y, end=t0 + span)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(
            f'<polyline fill="none" stroke="{s.color}" stroke-width="{s.width}"{dash} '
            f'points="{points}"><title>{html.escape(s.label)}</title></polyline>'
        )
    for m in panel.marks:
        for i, (t, v) in enumerate(zip(m.times, m.values, strict=True)):
            px, py = x(t), y(v)
            tip = m.notes[i] if i < len(m.notes) else m.label
            shape = (
                f"{px - 4:.1f},{py + 4:.1f} {px + 4:.1f},{py + 4:.1f} {px:.1f},{py - 4:.1f}"
                if m.symbol == "^"
                else f"{px - 4:.1f},{py - 4:.1f} {px + 4:.1f},{py - 4:.1f} {px:.1f},{py + 4:.1f}"
            )
            out.append(
                f'<polygon points="{shape}" fill="{m.color}"><title>{html.escape(tip)}</title>'
                "</polygon>"
            )
    out.append(legend)
    out.append("</svg>")
    return "".join(out)


def _polyline(
    ts: Sequence[float],
    vs: Sequence[float],
    step: bool,
    x: Callable[[float], float],
    y: Callable[[float], float],
    *,
    end: float,
) -> str:
    """SVG points of a series; a step series holds each value until the next time."""
    points: list[str] = []
    for i, (t, v) in enumerate(zip(ts, vs, strict=True)):
        if step and i:
            points.append(f"{x(t):.1f},{y(vs[i - 1]):.1f}")
        points.append(f"{x(t):.1f},{y(v):.1f}")
    if step and vs:
        points.append(f"{x(end):.1f},{y(vs[-1]):.1f}")
    return " ".join(points)


def _legend(panel: Panel) -> tuple[str, int]:
    """The legend as SVG, in as many rows under the title as it needs, and the row count."""
    items = [(s.label, s.color, s.dashed) for s in panel.series] + [
        (m.label, m.color, False) for m in panel.marks
    ]
    out: list[str] = []
    cursor, row = float(_LEFT), 1
    for label, color, dashed in items:
        width = 36 + _CHAR * len(label)
        if cursor + width > _WIDTH - _RIGHT and cursor > _LEFT:
            cursor, row = float(_LEFT), row + 1
        y = 20 + _ROW * row
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        out.append(
            f'<line x1="{cursor:.0f}" x2="{cursor + 18:.0f}" y1="{y - 4}" y2="{y - 4}" '
            f'stroke="{color}" stroke-width="3"{dash}/>'
            f'<text x="{cursor + 22:.0f}" y="{y}">{html.escape(label)}</text>'
        )
        cursor += width
    return "".join(out), row


# --- matplotlib (optional) ----------------------------------------------------------------


def _write_matplotlib(figure: Figure, path: Path) -> None:
    if not figure.panels:  # (matplotlib's own error is a traceback about a grid of 0 rows)
        raise PlotError(f"{path}: nothing to plot: {figure.empty}")
    try:
        from matplotlib.figure import Figure as MplFigure  # noqa: PLC0415
    except ImportError:
        raise PlotError(
            f"{path}: PNG and SVG plots need matplotlib: pip install 'autoscaler[plot]' "
            "(or write an .html plot, which needs nothing more)"
        ) from None
    times = figure.times
    span = (times[-1] - times[0]) if len(times) > 1 else 1.0
    unit, unit_name = time_unit(span)
    t0 = times[0] if times else 0.0
    fig = MplFigure(figsize=(13, 3.2 * len(figure.panels) + 0.8), layout="constrained")
    axes = fig.subplots(len(figure.panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, figure.panels, strict=True):
        for s in panel.series:
            ts, vs = downsample(times, s.values, MAX_POINTS)
            xs = [(t - t0) / unit for t in ts]
            if s.step and xs:
                xs, vs = [*xs, span / unit], [*vs, vs[-1]]
            ax.plot(
                xs,
                vs,
                color=s.color,
                linewidth=s.width,
                linestyle="--" if s.dashed else "-",
                drawstyle="steps-post" if s.step else "default",
                label=s.label,
            )
        for m in panel.marks:
            ax.scatter(
                [(t - t0) / unit for t in m.times],
                list(m.values),
                marker=m.symbol,
                color=m.color,
                s=22,
                zorder=3,
                label=m.label,
            )
        ax.set_title(panel.title, loc="left", fontsize=11, fontweight="bold")
        ax.set_ylabel(panel.unit)
        ax.set_ylim(bottom=0)
        ax.grid(True, color="#e5e5e5")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes[-1].set_xlabel(unit_name)
    axes[-1].set_xlim(0, span / unit)
    fig.suptitle(figure.title + (f"\n{figure.subtitle}" if figure.subtitle else ""), fontsize=12)
    fig.savefig(path, dpi=110)
