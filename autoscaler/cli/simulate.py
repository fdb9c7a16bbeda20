"""`autoscaler simulate`: a policy and the baselines, in closed loop on a load trace.

Exit codes: 0 simulated; 1 a bad policy file or trace (each problem says FILE[:LINE]: why),
or a plot that cannot be written; 2 bad usage (an unknown signal or baseline, a bad
number, a `--plot` name of no known format).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from autoscaler.cli import help_text
from autoscaler.cli.backtest import NEGATIVE_OR_AGO
from autoscaler.cli.exits import print_error
from autoscaler.cli.printable import json_safe, printable
from autoscaler.cli.validate import print_problems
from autoscaler.core.durations import format_duration, parse_duration
from autoscaler.core.model import Policy
from autoscaler.core.names import counted, noun
from autoscaler.core.ranges import MAX_COUNT, MAX_DURATION, MAX_REPLAY_OFFSET
from autoscaler.policy.loader import load_paths
from autoscaler.replay.baselines import BASELINES
from autoscaler.replay.plot import PlotError, option_problem, write
from autoscaler.replay.recommended import recommended_policy
from autoscaler.replay.simulate import (
    DEFAULT_START,
    Recorded,
    Setup,
    Simulation,
    SimulationError,
    simulate,
)
from autoscaler.replay.simulate_plot import score_table, simulation_figure
from autoscaler.replay.trace import Trace, TraceError, read_trace

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_USAGE = 2
# argparse's own negative numbers (`-.5`), and backtest's times before now (`-7d`).
_BEFORE_NOW = re.compile(r"^-\d*\.\d+$|" + NEGATIVE_OR_AGO.pattern)  # or `-.5`


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `simulate` on the CLI's subcommands."""
    p = sub.add_parser(
        "simulate",
        **help_text.parser_help("simulate"),
        help="replay a load trace through a policy and the baselines; score and plot them",
        description=(
            "Closed-loop simulation on a load trace, no servers: the policy decides through "
            "the same code as `run`, on a simulated fleet, beside the HPA and EC2 target "
            "tracking algorithms, a static fleet and an oracle."
        ),
    )
    p.add_argument(
        "policy",
        nargs="?",
        metavar="POLICY_FILE",
        help="policy file (every policy in it is simulated); default: the recommended policy",
    )
    p.add_argument(
        "--trace", required=True, metavar="CSV", help="timestamp_seconds,requests_per_second"
    )
    p.add_argument(
        "--capacity",
        required=True,
        type=float,
        metavar="RPS",
        help="requests per second one instance serves",
    )
    p.add_argument(
        "--provisioning",
        default="120s",
        type=_provisioning,
        metavar="DURATION",
        help="from a scale-up to the new instances serving (default: %(default)s)",
    )
    p.add_argument(
        "--target-utilization",
        default=0.7,
        type=float,
        metavar="FRACTION",
        help="demand = load / (capacity × this); the recommended policy aims here (default 0.7)",
    )
    p.add_argument(
        "--compare",
        default=",".join(BASELINES),
        type=_names,
        metavar="LIST",
        help="baselines to run beside the policy (default: %(default)s; 'none' for none)",
    )
    p.add_argument(
        "--signal",
        action="append",
        default=[],
        metavar="CHECK=SIGNAL",
        help="what a check's query returns: load, per_instance, utilization, latency_p95 "
        "(default: the signal the check is named after)",
    )
    p.add_argument("--output", "-o", choices=["table", "json"], default="table")
    p.add_argument("--plot", metavar="FILE", help="write a plot: .png or .svg (matplotlib), .html")
    p.add_argument(
        "--from",
        dest="start_offset",
        type=_offset,
        default=0.0,
        metavar="OFFSET",
        help="start this far into the trace (e.g. 14d); forecasts learn from what is before",
    )
    p.add_argument(
        "--to",
        dest="end_offset",
        type=_offset,
        default=None,
        metavar="OFFSET",
        help="stop this far into the trace (default: its end)",
    )
    p.add_argument(
        "--start-time",
        type=_instant,
        default=DEFAULT_START,
        metavar="RFC3339",
        help="wall-clock time of the first row, for schedules (default: 2024-01-01T00:00:00Z)",
    )
    # `--from -7d` (backtest's form): read as a value, to be refused as one, not taken by
    # argparse (before 3.13) for an unknown option (`expected one argument`).
    p._negative_number_matcher = _BEFORE_NOW
    p.set_defaults(handler=cmd_simulate)


def _duration(text: str, *, limit: timedelta = MAX_DURATION, what: str = "a duration") -> float:
    """Seconds from `90`, `90s`, `2m`, `14d` (a Prometheus duration of at most `limit`)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            return parse_duration(text, limit=limit, what=what).total_seconds()
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration >= 0")
    return seconds


def _offset(text: str) -> float:
    """`_duration` into a trace, which may span years: up to 10y, not a policy's 1y."""
    if text.startswith(("-", "now")):  # `backtest --from -7d`'s form: a trace has no now
        raise argparse.ArgumentTypeError(
            f"{text!r} counts back from now: an offset into the trace counts from its first "
            "row (e.g. 14d)"
        )
    return _duration(text, limit=MAX_REPLAY_OFFSET, what="an offset into the trace")


def _provisioning(text: str) -> float:
    """`_duration`, at most a day (no fleet waits longer for an instance)."""
    seconds = _duration(text)
    if seconds > 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than a day (1d)")
    return seconds


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    return [] if names == ["none"] else names


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset, e.g. Z or +01:00")
    return value


def _signals(pairs: Sequence[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        check, sep, signal = pair.partition("=")
        if not sep or not check.strip() or not signal.strip():
            raise SimulationError(f"--signal {pair!r}: write CHECK=SIGNAL, e.g. rps=load")
        mapping[check.strip()] = signal.strip()
    return mapping


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run `simulate` as parsed by `add_parser`; print the table or JSON; write the plot."""
    plot_problem = option_problem(args.plot) if args.plot else None
    if plot_problem is not None:  # said before a simulation that may take a while
        _error(plot_problem)
        return EXIT_USAGE
    if args.end_offset is not None and args.start_offset >= args.end_offset:
        first, last = (
            format_duration(timedelta(seconds=s)) for s in (args.start_offset, args.end_offset)
        )
        _error(f"--from ({first}) must be before --to ({last})")
        return EXIT_USAGE
    try:
        full = read_trace(args.trace)
        trace = full
        if args.start_offset or args.end_offset is not None:
            end = full.end if args.end_offset is None else args.end_offset
            trace = full.window(args.start_offset, end)
    except TraceError as exc:
        _error(str(exc))
        return EXIT_INPUT
    try:
        setup = Setup(
            capacity=args.capacity,
            target_utilization=args.target_utilization,
            provisioning=args.provisioning,
            start=args.start_time,
        )
        policies = _policies(args.policy, trace, setup)
        if policies is None:
            return EXIT_INPUT
        sim = simulate(
            trace,
            setup,
            policies,
            signals=_signals(args.signal),
            compare=args.compare,
            recorded=Recorded(full, args.start_offset),
        )
    except TraceError as exc:
        _error(str(exc))
        return EXIT_INPUT
    except SimulationError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except OverflowError:
        _error(
            "the simulated times leave the calendar (year 1 to 9999): use an earlier --start-time"
        )
        return EXIT_USAGE
    if args.output == "json":
        print(json_safe(json.dumps(sim.to_json(), indent=2)))
        print(summary(sim), file=sys.stderr)
    else:
        print(summary(sim))
        print()
        print(render_table(sim), end="")
    if args.plot:
        try:
            path = write(simulation_figure(sim), args.plot)
        except PlotError as exc:
            _error(str(exc))
            return EXIT_INPUT
        print(printable(f"plot written to {path}"), file=sys.stderr)
    return EXIT_OK


def _policies(path: str | None, trace: Trace, setup: Setup) -> list[Policy] | None:
    """The policies in `path`, or the recommended one; None (problems printed) if invalid."""
    if path is None:
        peak = setup.demand(max(trace.rates))
        return [
            recommended_policy(
                setup.capacity,
                setup.target_utilization,
                max_count=min(MAX_COUNT, max(100, 2 * peak)),
                provisioning=setup.provisioning,
            )
        ]
    if not Path(path).is_file():
        what = "a folder: give one policy file" if Path(path).is_dir() else "no such policy file"
        _error(f"{path}: {what}")
        return None
    result = load_paths([path])
    print_problems([*result.problems, *result.warnings], sys.stderr)
    if result.problems:
        return None
    if not result.policies and result.templates:
        names = ", ".join(template.pattern for template in result.templates)
        _error(
            f"{path}: holds only templates (for_each: {names}), which simulate does not "
            "expand: copy one with a concrete target"
        )
        return None
    if not result.policies:
        _error(f"{path}: no policy in this file")
        return None
    return result.policies


def _error(message: str) -> None:
    """`error: message` on stderr, as every command writes one (`print_error`: control
    characters escaped, since a path, a trace's cell or a check's name comes from the
    user's files; secrets scrubbed; after the log lines before it)."""
    print_error(message)


def summary(sim: Simulation) -> str:
    """A few lines a person reads first: the run, then each policy against the baselines."""
    days = sim.ticks * 15 / 86400
    setup = sim.setup
    lines = [
        f"simulate {sim.trace.name}: {days:.2f} days in {sim.ticks:,} {noun(sim.ticks, 'tick')} "
        "of 15 s; "
        f"capacity {setup.capacity:g} req/s per instance, target utilization "
        f"{setup.target_utilization:g}, provisioning {setup.provisioning:g} s"
    ]
    gaps = sim.trace.gaps()
    if gaps:
        longest = max(length for _, length in gaps)
        lines.append(
            f"note: the trace has {counted(len(gaps), 'gap')} (longest {longest / 3600:.1f} h); "
            "the load holds its last value across a gap"
        )
    baselines = [run for run in sim.runs if run.kind == "baseline"]
    for run in (run for run in sim.runs if run.kind == "policy"):
        s = run.scores
        against = ", ".join(
            f"{b.name} {b.scores.under_provisioned_pct:.2f} %"
            for b in baselines
            if b.name in ("hpa", "aws-tt")
        )
        cost = ", ".join(f"{b.name} {b.scores.instance_hours:,.1f}" for b in baselines)
        lines.append(
            f"{s.name}: under capacity {s.under_provisioned_pct:.2f} % of the time"
            + (f" ({against})" if against else "")
            + f"; {s.instance_hours:,.1f} instance-hours"
            + (f" ({cost})" if cost else "")
            + f"; {s.actions:,} scaling {noun(s.actions, 'action')}"
        )
    return "\n".join(printable(line) for line in lines)


def render_table(sim: Simulation) -> str:
    """The scores as an aligned text table."""
    rows = [[printable(cell) for cell in row] for row in score_table(sim)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
