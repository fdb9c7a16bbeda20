"""`autoscaler backtest`: what policies would have done on their Prometheus history.

Templates are expanded with one discovery pass, as `plan` does: each target discovered now
is replayed on its own series of the template's grouped query (sent once for all).

Exit codes: 0 done; 1 some policy file is invalid or discovery failed (the valid policies
are still backtested) or the plot cannot be written; 2 bad usage; 3 Prometheus unreachable; 4 bad
connection settings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, TextIO

from autoscaler.cli import help_text
from autoscaler.cli.exits import print_error
from autoscaler.cli.logs import setup_logging
from autoscaler.cli.printable import json_safe, printable
from autoscaler.cli.validate import print_problems
from autoscaler.config.connections import Settings, add_connection_arguments, settings_from_args
from autoscaler.config.options import CONFIG, INT, add_arguments, at_least, flag_type
from autoscaler.core.durations import format_duration, parse_duration
from autoscaler.core.names import counted
from autoscaler.core.ranges import MAX_COUNT, MAX_REPLAY_OFFSET
from autoscaler.errors import AutoscalerError, Problem, QueryError, SourceUnavailable
from autoscaler.policy.loader import load_paths
from autoscaler.policy.rules import MIN_INTERVAL, short_interval

if TYPE_CHECKING:
    from autoscaler.core.model import Policy
    from autoscaler.replay.backtest import Options
    from autoscaler.replay.results import Backtest, PolicyBacktest

# The replay engine, the Prometheus adapter and discovery are imported when a backtest
# runs, not when the `autoscaler` command builds its parser (`validate` starts faster).

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_STARTUP = 0, 1, 2, 3, 4
SHOWN_CHANGES = 10
MIN_RANGE_TIMEOUT, MAX_RANGE_TIMEOUT = 0.1, 3600.0  # an hour per attempt, 3 with retries
_RELATIVE = re.compile(r"^(?:now)?-(?P<ago>\S+)$")
_OUTSIDE_THE_CALENDAR = (
    "autoscaler backtest: error: --from/--to (with the history forecasts and the anomaly "
    "guard read before --from) must lie within year 1 to 9999"
)
NEGATIVE_OR_AGO = re.compile(r"^-\d+(?:\.\d+)?(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*$")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `backtest` on the main parser's subcommands."""
    parser = sub.add_parser(
        "backtest",
        **help_text.parser_help("backtest"),
        help="replay policies on their Prometheus history: what they would have done, and why",
        description="Replay policies on Prometheus history with the production decision code "
        "(cooldowns, stabilization, limits, schedules, missing data) and report what they "
        "would have done. The simulated target obeys at once; nothing is scaled.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        default=[os.environ.get("AUTOSCALER_POLICIES") or "policies"],  # empty: unset
        help="policy files or folders (default: policies/; env AUTOSCALER_POLICIES)",
    )
    parser.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="T",
        help="start: RFC 3339 (2026-03-01T00:00:00Z) or relative to now (-7d, now-12h)",
    )
    parser.add_argument("--to", dest="end", default="now", metavar="T", help="end (default now)")
    parser.add_argument(
        "--step",
        metavar="D",
        help="evaluate every D (e.g. 1m) instead of each policy's own interval",
    )
    counts = parser.add_mutually_exclusive_group()
    counts.add_argument(
        "--start-count", type=int, metavar="N", help="count at the start (default: min)"
    )
    counts.add_argument(
        "--count-query",
        metavar="PROMQL",
        help="the count that really ran, e.g. "
        "'max(aws_autoscaling_group_desired_capacity{asg=\"$asg\"})' ($policy, $asg, "
        "$region, $job, $group, $namespace): start from it and show it side by side",
    )
    parser.add_argument(
        "--rescale",
        action="append",
        default=[],
        metavar="CHECK",
        help="with --count-query: scale CHECK's value by recorded / simulated count "
        "(for utilization-like checks; assumes the load spreads evenly). Repeatable",
    )
    parser.add_argument("--output", "-o", choices=["table", "json"], default="table")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="write a plot of the first policies: .html (self-contained), .png or .svg "
        "(matplotlib)",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=flag_type(at_least(INT, 1)),  # 0 and negatives were taken as 1 silently
        default=_cpus(),
        metavar="N",
        help="replay policies in N processes (default: the CPUs available, %(default)s)",
    )
    parser.add_argument(
        "--range-timeout",
        type=_range_timeout,
        default=60.0,
        metavar="SECONDS",
        help="seconds for one range query attempt, 0.1 to 3600; retries stop after 3x this "
        "(default %(default)s)",
    )
    # The Prometheus and Nomad settings below read the config file (as plan and run do):
    # AUTOSCALER_CONFIG always did; the flag is what the help's `config …` keys refer to.
    add_arguments(parser, (CONFIG,))
    add_connection_arguments(parser)
    # `--from -7d`: argparse (before 3.13) takes `-7d` for an option; this command has no
    # option that looks like a negative number or a duration, so read those as values.
    parser._negative_number_matcher = NEGATIVE_OR_AGO
    parser.set_defaults(handler=main)


def _range_timeout(text: str) -> float:
    """Seconds for one range query attempt: refused out of bounds rather than clamped (`inf`
    failed every query as if Prometheus were unreachable; `0` was silently 0.1)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not MIN_RANGE_TIMEOUT <= seconds <= MAX_RANGE_TIMEOUT:  # NaN too
        raise argparse.ArgumentTypeError(
            f"must be {MIN_RANGE_TIMEOUT:g} to {MAX_RANGE_TIMEOUT:g} seconds, got {text}"
        )
    return seconds


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_instant(text: str, now: datetime) -> datetime:
    """`now`, `-7d` / `now-7d` (a Prometheus duration before `now`), or RFC 3339, in UTC."""
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative is not None:
        ago = parse_duration(
            relative.group("ago"), limit=MAX_REPLAY_OFFSET, what="a time before now"
        )
        return now - ago
    try:
        instant = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise ValueError(
            f"{text!r} is not a time: use RFC 3339 with a zone (2026-03-01T00:00:00Z), "
            "now, or a duration before now (-7d, now-12h)"
        )
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside year 1 to 9999 in UTC") from None


def main(args: argparse.Namespace) -> int:
    """Run `autoscaler backtest` with parsed arguments; returns the exit code."""
    from autoscaler.adapters.sources.prometheus import PrometheusSource  # noqa: PLC0415
    from autoscaler.replay.backtest import quiet_decisions, run_backtest  # noqa: PLC0415
    from autoscaler.service.discovery_setup import from_settings, with_discovered  # noqa: PLC0415

    setup_logging("warning", "text")
    quiet_decisions()  # `run` logs every evaluation; here that would be millions of lines
    try:
        options = _options(args)
    except ValueError as exc:
        print(printable(f"autoscaler backtest: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except OverflowError:
        print(_OUTSIDE_THE_CALENDAR, file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = settings_from_args(args)
        timeout = args.range_timeout
        source = PrometheusSource(
            replace(settings.prometheus, timeout=timeout, deadline=3 * timeout)
        )
    except (AutoscalerError, ValueError) as exc:
        print_error(exc)  # as plan's and run's: scrubbed, escaped
        return EXIT_STARTUP
    loaded = load_paths(args.paths)
    print_problems([*loaded.problems, *loaded.warnings], sys.stderr)
    found: list[Problem] = []
    discovered = list(loaded.policies)
    if loaded.templates or settings.nomad_scaling_policies:
        # The targets discovered now, as `plan` expands them; each reads its own series of
        # its template's grouped query (sent once for all of them).
        discovered, found = with_discovered(loaded, from_settings(settings, watch=False))
        print_problems(found, sys.stderr)
    policies = [p for p in discovered if p.enabled]
    try:
        _check_count_options(options, policies)
    except ValueError as exc:
        print(printable(f"autoscaler backtest: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    try:
        result = run_backtest(
            policies, source, options, jobs=args.jobs, before_queries=partial(_probe, settings)
        )
    except SourceUnavailable as exc:  # the server's text
        print(printable(f"error: {exc}"), file=sys.stderr)
        return EXIT_UNREACHABLE
    except OverflowError:  # raised before any query is sent (`PastReads`)
        print(_OUTSIDE_THE_CALENDAR, file=sys.stderr)
        return EXIT_USAGE
    finally:
        source.close()
    if not _report(result, args, policies):
        return EXIT_INVALID
    return EXIT_INVALID if loaded.problems or found else EXIT_OK


def _probe(settings: Settings) -> None:
    """Return when Prometheus can be reached within an instant query's deadline (3 x
    `--query-timeout`, as `plan`'s); raise `SourceUnavailable` when it cannot.

    A range query retries for 3 x `--range-timeout` (3 minutes by default), which a slow
    range in a long backtest may need, but a server that is not there (a mistyped port)
    should be named at once. Any answer is enough: a rejected query, or a 5xx or 429 (a
    Prometheus starting up, a rate-limited gateway), which the range queries then wait
    for with their own, longer deadline.
    """
    probe = settings.source()
    try:
        probe.query("vector(1)")
    except SourceUnavailable as exc:
        if getattr(exc.__cause__, "status", None) is None:  # no answer at all
            raise
    except QueryError:  # answered, if not as expected: the range queries will say more
        pass
    finally:
        probe.close()


def _report(result: Backtest, args: argparse.Namespace, policies: list[Policy]) -> bool:
    """Print the result as asked (`-o json` on stdout with its summary on stderr: the
    terminal always gets one) and write the plot; False if the plot cannot be written."""
    from autoscaler.replay.backtest_plot import backtest_figure  # noqa: PLC0415
    from autoscaler.replay.plot import PlotError, write  # noqa: PLC0415

    if args.output == "json":
        print(json_safe(json.dumps(result.to_dict(), indent=2)))
        render_summary(result, sys.stderr)
    else:
        render_table(result, sys.stdout)
    if args.plot:
        try:
            path = write(backtest_figure(result, {p.name: p for p in policies}), args.plot)
        except PlotError as exc:
            print(printable(f"error: {exc}"), file=sys.stderr)
            return False
        print(printable(f"plot written to {path}"), file=sys.stderr)
    return True


def _options(args: argparse.Namespace) -> Options:
    from autoscaler.replay.backtest import Options  # noqa: PLC0415
    from autoscaler.replay.plot import option_problem  # noqa: PLC0415

    now = datetime.now(UTC).replace(microsecond=0)
    start, end = parse_instant(args.start, now), parse_instant(args.end, now)
    if start >= end:
        raise ValueError(f"--from ({args.start}) must be before --to ({args.end})")
    step = None
    if args.step is not None:
        step = parse_duration(args.step)
        if step < MIN_INTERVAL:  # as a policy's interval: `5ms` is most likely `5m`
            raise ValueError(f"--step {short_interval(args.step)}")
    if args.start_count is not None and not 0 <= args.start_count <= MAX_COUNT:
        raise ValueError(f"--start-count must be 0 to {MAX_COUNT} (a policy's max is at most that)")
    if args.rescale and args.count_query is None:
        raise ValueError("--rescale needs --count-query (the recorded count to rescale by)")
    plot_problem = option_problem(args.plot) if args.plot else None
    if plot_problem is not None:
        raise ValueError(plot_problem)
    return Options(
        start=start,
        end=end,
        step=step,
        start_count=args.start_count,
        count_query=args.count_query,
        rescale=frozenset(args.rescale),
        series=bool(args.plot),
    )


def _check_count_options(options: Options, policies: list[Policy]) -> None:
    from autoscaler.replay.backtest import count_query_for  # noqa: PLC0415

    if options.count_query is not None:
        for policy in policies:
            count_query_for(options.count_query, policy)
    checks = {check.name for policy in policies for check in policy.checks}
    unknown = sorted(options.rescale - checks)
    if unknown:
        raise ValueError(f"--rescale {', '.join(unknown)}: no policy has such a check")


def render_table(result: Backtest, out: TextIO) -> None:
    """One row per policy, then each policy's first changes with their reasons."""
    render_summary(result, out)
    for p in result.policies:
        _render_policy(p, out)


def render_summary(result: Backtest, out: TextIO) -> None:
    """The run and one row per policy: what `-o json` also says on stderr, for the terminal."""
    span = format_duration(result.end - result.start)
    _say(
        f"backtest {_time(result.start)} → {_time(result.end)} ({span}), "
        f"{result.range_queries} range queries",
        file=out,
    )
    if not result.policies:
        _say("no enabled policies", file=out)
        return
    width = max(len("policy"), *(len(p.policy) for p in result.policies))
    _say(
        f"{'policy':<{width}}  {'step':>5}  {'evals':>7}  {'actions':>7}  {'inst-hours':>10}  "
        f"{'min':>4}  {'max':>4}  {'holds':>6}  {'no-data':>7}",
        file=out,
    )
    for p in result.policies:
        _say(
            f"{p.policy:<{width}}  {format_duration(p.step):>5}  {p.evaluations:>7}  "
            f"{p.actions:>7}  {p.instance_hours:>10.1f}  {p.min_count:>4}  {p.max_count:>4}  "
            f"{p.holds:>6}  {p.no_data:>7}",
            file=out,
        )


def _render_policy(p: PolicyBacktest, out: TextIO) -> None:
    print(file=out)
    _say(f"{p.policy}: {counted(p.actions, 'change')}", file=out)
    for change in p.changes[:SHOWN_CHANGES]:
        reasons = " | ".join(change.reasons)
        _say(f"  {_time(change.at)}  {change.old} → {change.new}  {reasons}", file=out)
    if p.actions > SHOWN_CHANGES:
        _say(f"  ... and {p.actions - SHOWN_CHANGES} more (-o json lists them all)", file=out)
    if p.recorded is not None and p.recorded.min_count is None:
        # Not "min None, max None": the query found no count (see its error, if any).
        n = p.evaluations
        among = "its one evaluation" if n == 1 else f"any of the {n} evaluations"
        _say(f"  recorded: no count in {among}  ({p.recorded.query})", file=out)
    elif p.recorded is not None:
        r = p.recorded
        _say(
            f"  recorded: {r.instance_hours:.1f} instance-hours, min {r.min_count}, "
            f"max {r.max_count}, {counted(r.changes, 'change')}, "
            f"{counted(r.missing, 'evaluation')} without a count"
            f"  ({r.query})",
            file=out,
        )
    for check, failures in p.check_failures.items():
        _say(
            f"  ! check {check}: no usable value in {failures.evaluations} of {p.evaluations} "
            f"evaluations; first at {_time(failures.first_at)}: {failures.first_error}",
            file=out,
        )
    for error in p.errors:
        _say(f"  ! {error}", file=out)
    for note in p.notes:
        _say(f"  note: {note}", file=out)


def _say(line: str, *, file: TextIO) -> None:
    """`line` on `file`, its control characters escaped (a reason names a target, whose
    name may hold an escape sequence or a line break; a check's error is a server's text)."""
    print(printable(line), file=file)


def _time(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
