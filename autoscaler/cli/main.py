"""The `autoscaler` command: validate, plan (dry-run preview), run, schema, simulate,
backtest, test, convert.

Exit codes: 0 success; 1 invalid policy files (or bad usage of a file); 2 bad command-line
usage (argparse); 3 `plan` or `run --once` could not evaluate some policy (`--once`: or
skipped it, stopped by SIGTERM/SIGINT); 4 startup error
(state database, listen address, an API beyond loopback without a token).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from autoscaler import __version__
from autoscaler.cli import backtest, convert, help_text, policytest, simulate
from autoscaler.cli.completion import SHELLS, completion_script
from autoscaler.cli.logs import setup_logging
from autoscaler.cli.report import OUTPUTS, counted, name_list, render, summarize
from autoscaler.config.connections import (
    CONNECTION_OPTIONS,
    NOMAD_OPTIONS,
    NOMAD_SCALING_POLICIES,
    NOMAD_TIMEOUT,
    Settings,
    add_connection_arguments,
    nomad_settings_from_args,
    settings_from_args,
)
from autoscaler.config.file import ConfigFile, config_schema, load_config
from autoscaler.config.options import (
    BOOL,
    COMMON,
    CONFIG,
    PLAN_STATE,
    RUN_STATE,
    STATE_PASSWORD,
    Option,
    OptionError,
    add_arguments,
    parsed_options,
    resolve,
    source_of,
)
from autoscaler.config.service import (
    HA_OPTIONS,
    SERVICE_OPTIONS,
    add_ha_arguments,
    add_service_arguments,
    replica_id,
    service_config_from_args,
)
from autoscaler.config.state import is_postgres, open_postgres_state
from autoscaler.errors import AutoscalerError, PolicyWarning, StateError
from autoscaler.policy.loader import LoadResult, json_schema, load_paths
from autoscaler.policy.parallel import default_workers
from autoscaler.redact import scrub

if TYPE_CHECKING:
    from autoscaler.adapters.state import LayeredStateStore
    from autoscaler.adapters.targets.nomad_settings import NomadSettings
    from autoscaler.core.ports import StateStore
    from autoscaler.engine.reconciler import Evaluation
    from autoscaler.service.leadership import Leadership

# What only `plan`, `run` and discovery use (the reconciler, the state stores, requests,
# discovery) is imported inside their functions: `validate`, `test`, `schema` and `--help`
# start in about half the time.

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2  # argparse's own code
EXIT_CHANGES = 2  # `plan --detailed-exitcode` only: some policy would scale
EXIT_NOT_EVALUATED = 3
EXIT_STARTUP = 4
DETAILED = "--detailed-exitcode"
# How long `run` on SQLite lets a decision that scales nothing wait for its write, so that
# many are written in one commit (see `LayeredStateStore`; a scale always waits for its write).
STATE_LINGER = 1.0


DISCOVER = Option(
    dest="discover",
    kind=BOOL,
    flags=("--discover",),
    help="also expand the templates with one discovery pass (Nomad as for plan: NOMAD_* "
    "variables, then the config file's nomad keys; AWS from its standard environment) and "
    "check every expanded policy",
)
DISCOVER_NOMAD_SCALING_POLICIES = replace(
    NOMAD_SCALING_POLICIES,
    help="with --discover: also translate the Nomad Autoscaler policies of jobs' `scaling` blocks",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to document the CLI in the README)."""
    parser = argparse.ArgumentParser(
        prog="autoscaler",
        description="Prometheus-driven autoscaling for EC2 Auto Scaling Groups and Nomad jobs.",
        epilog=help_text.epilog(None),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"autoscaler {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = _command(sub, "validate", "check policy files; exit 1 listing every problem")
    # NOMAD_OPTIONS add no flag: they let --discover read the Nomad that plan and run read.
    add_arguments(
        validate,
        (CONFIG, *COMMON, DISCOVER, DISCOVER_NOMAD_SCALING_POLICIES, *NOMAD_OPTIONS, NOMAD_TIMEOUT),
    )

    plan = _command(sub, "plan", "dry-run preview: what each policy would do right now, and why")
    add_arguments(plan, (CONFIG, *COMMON, PLAN_STATE, STATE_PASSWORD))
    plan.add_argument(
        "--output",
        "-o",
        choices=OUTPUTS,
        default="table",
        help="table (default: a block per policy with its reasons), wide (a row per policy "
        "with every check's value), json, or yaml (the same document as json)",
    )
    plan.add_argument(
        DETAILED,
        action="store_true",
        help="exit 0 when no policy would scale, 2 when some would, 3 when a check or a "
        "target failed, 1 for any invalid input (terraform's convention)",
    )
    add_connection_arguments(plan)

    run = _command(sub, "run", "the reconciliation loop (or one pass with --once)")
    add_arguments(run, (CONFIG, *COMMON, RUN_STATE, STATE_PASSWORD))
    run.add_argument("--once", action="store_true", help="evaluate every policy once and exit")
    add_connection_arguments(run)
    add_service_arguments(run)
    add_ha_arguments(run)

    schema = _command(sub, "schema", "print the JSON Schema of policy files (or --config's)")
    schema.add_argument(
        "--config",
        action="store_true",
        dest="config_schema",
        help="the JSON Schema of the service config file instead",
    )
    completion = _command(sub, "completion", "print a shell completion script")
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    # Commands in modules of their own register here and name their handler.
    simulate.add_parser(sub)
    backtest.add_parser(sub)
    policytest.add_parser(sub)
    convert.add_parser(sub)
    return parser


def _command(sub: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with its examples and exit codes."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=summary[:1].upper() + summary[1:] + ".",
        epilog=help_text.epilog(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


# Every option the config file may set: one file serves validate, plan and run alike.
FILE_OPTIONS = (
    *COMMON,
    RUN_STATE,
    STATE_PASSWORD,
    *CONNECTION_OPTIONS,
    *SERVICE_OPTIONS,
    *HA_OPTIONS,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Reasons hold `→` and policy names any text: on a stdout that cannot encode them (a
    # Latin-1 terminal, PYTHONIOENCODING) they are escaped (`\u2192`, still valid inside
    # the JSON's strings) rather than the command failing with a traceback.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")
    code = _main(arguments)
    if _detailed(arguments) and arguments[:1] == ["plan"] and code == EXIT_STARTUP:
        return EXIT_INVALID  # terraform's convention: 1 for any error of the input
    return code


def _detailed(argv: Sequence[str]) -> bool:
    """Whether `argv` asks for `--detailed-exitcode`, also abbreviated as argparse takes it
    (`--detailed`): 2 must then only ever mean "would scale"."""
    flags = (a.split("=", 1)[0] for a in argv)
    return any(len(flag) > 2 and DETAILED.startswith(flag) for flag in flags)  # not "--"


def _main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        options = parsed_options(args)
        if options:
            problem = _resolve_options(parser, args, options)
            if problem is not None:
                return problem
    except SystemExit as exc:
        # With --detailed-exitcode, 2 means "would scale": a usage error must not say so.
        if exc.code == EXIT_USAGE and argv[:1] == ["plan"] and _detailed(argv):
            return EXIT_INVALID
        raise
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    if args.command == "schema":
        document = config_schema(FILE_OPTIONS) if args.config_schema else json_schema()
        print(json.dumps(document, indent=2))
        return EXIT_OK
    if args.command == "completion":
        print(completion_script(parser, args.shell), end="")
        return EXIT_OK
    # The service logs a line per decision: in batches (a warning or worse at once).
    setup_logging(args.log_level, args.log_format, batched=args.command == "run")
    if args.command == "validate":
        return cmd_validate(
            args.paths,
            sys.stdout,
            discover=args.discover,
            nomad_scaling_policies=args.nomad_scaling_policies,
            nomad=lambda: nomad_settings_from_args(args),
        )
    try:
        settings = settings_from_args(args)
    except (AutoscalerError, ValueError) as exc:
        _error(exc)
        return EXIT_STARTUP
    if args.command == "plan":
        return cmd_plan(
            args.paths,
            settings,
            output=args.output,
            state_path=args.state,
            password_file=args.state_password_file,
            detailed=args.detailed_exitcode,
        )
    if args.ha and not is_postgres(args.state):
        if source_of(args, "ha") == "file":
            # The config file's own mistake: a configuration problem (4), as its others
            # are, not a usage error (2).
            _error(
                f"{args.config}: ha.enabled needs a shared state database: set state: "
                "postgresql://... (or --state)"
            )
            return EXIT_STARTUP
        parser.error("--ha needs a shared state database: --state postgresql://...")
    return cmd_run(args, settings)


def _resolve_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace, options: Sequence[Option]
) -> int | None:
    """Fill `args` from flags, variables, the config file and defaults, in that order.

    Returns an exit code when the config file is invalid (its problems on stderr: 1 for
    `validate`, else 4); a variable with a bad value is a usage error naming it (exit 2).
    """
    try:
        resolve(args, [CONFIG], {})
        config = load_config(args.config, FILE_OPTIONS)
        if config.problems:
            for problem in config.problems:
                print(scrub(str(problem)), file=sys.stderr)
            return EXIT_INVALID if args.command == "validate" else EXIT_STARTUP
        sources = resolve(args, options, config.values)
    except OptionError as exc:
        parser.error(scrub(str(exc)))
    _say_shadowed(config, options, sources)
    return None


def _say_shadowed(config: ConfigFile, options: Sequence[Option], sources: dict[str, str]) -> None:
    """A warning for each config-file key a variable or a flag overrides: flag > variable
    > file is the rule, and a variable set elsewhere (a container image sets some) made
    the file's `policies:` or `state:` count for nothing without a word."""
    for option in options:
        if not option.key or option.key not in config.values:
            continue
        source = sources.get(option.dest)
        if source not in ("env", "flag") or (source == "flag" and option.kind.repeat):
            continue  # (a repeatable flag adds to the file's values)
        by = option.env if source == "env" else "/".join(option.flags) or option.dest
        key = ".".join(option.key)
        print(
            f"warning: {config.path}: {key} is overridden by {by} (a flag wins over a "
            "variable, a variable over the config file)",
            file=sys.stderr,
        )


def _print_problems(result: LoadResult, out: TextIO) -> None:
    """Each problem, then each warning (`FILE:LINE: FIELD: warning: message`), one a line."""
    for problem in [*result.problems, *result.warnings]:
        print(scrub(str(problem)), file=out)


def _error(error: object) -> None:
    """`error: …` on stderr, without any secret the message (or a bad value in it) holds,
    after every log line logged before it."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    print(f"error: {scrub(str(error))}", file=sys.stderr)


def cmd_validate(
    paths: Sequence[str],
    out: TextIO,
    *,
    discover: bool = False,
    nomad_scaling_policies: bool = False,
    nomad: Callable[[], NomadSettings] | None = None,
) -> int:
    """`autoscaler validate`: one `FILE:LINE: FIELD: message` line per problem, and one
    `FILE:LINE: FIELD: warning: message` line per warning (which alone fails nothing).

    Offline, templates are checked on their own; with `discover`, they are also expanded
    with one discovery pass and every expanded policy is checked (by its expanded name).
    `nomad` gives the Nomad settings (default: NOMAD_* variables), built only then, so a
    bad one never fails an offline check.
    """
    with _fewer_collections():
        result = load_paths(paths, workers=default_workers())
    _print_problems(result, out)
    if result.problems:
        return EXIT_INVALID
    names = name_list([p.name for p in result.policies])
    templates = ""
    if result.templates:
        listed = "; ".join(t.describe() for t in result.templates)
        templates = f" and {counted(len(result.templates), 'template', 'templates')} ({listed})"
    valid = counted(len(result.policies), "policy", "policies")
    files = counted(len(result.files), "file", "files")
    print(f"{valid}{templates} valid in {files}: {names}", file=out)
    if not discover:
        return EXIT_OK
    from autoscaler.service.discovery_setup import discovery_for, with_discovered  # noqa: PLC0415

    try:
        discovery = discovery_for(
            nomad=None if nomad is None else nomad(),
            nomad_scaling_policies=nomad_scaling_policies,
        )
    except AutoscalerError as exc:
        _error(exc)
        return EXIT_STARTUP
    warnings: list[PolicyWarning] = []
    policies, problems = with_discovered(result, discovery, warnings=warnings)
    for problem in [*problems, *warnings]:
        print(scrub(str(problem)), file=out)
    found = policies[len(result.policies) :]
    shown = name_list([p.name for p in found])
    print(f"{counted(len(found), 'policy', 'policies')} discovered: {shown}", file=out)
    return EXIT_INVALID if problems else EXIT_OK


# Young objects the garbage collector lets pile up while `validate` reads policy files.
# Python's default (700) ran 245 collections over 10,000 files, 6 % of the time, to find
# nothing: what a file leaves behind is freed by reference counting or kept (its policy).
LOADING_GC_THRESHOLD = 10_000


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect the youngest generation less often while this block runs, then as before."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], LOADING_GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def cmd_plan(
    paths: Sequence[str],
    settings: Settings,
    *,
    output: str,
    state_path: str | None,
    password_file: str | None = None,
    detailed: bool = False,
) -> int:
    """`autoscaler plan`: evaluate every enabled policy once, read-only, and print it.

    Exit codes: 1 some policy file is invalid (the valid ones are still planned); 3 some
    policy could not be evaluated (target unreadable, Prometheus unreachable, a discovery
    source unreadable: its targets are unknown); else 0,
    even when a check failed (its policy holds; stderr names it). With `detailed`: 1
    invalid input, 3 a policy or a check failed, 2 some policy would scale, else 0.
    """
    from autoscaler.adapters.sources.coalesce import CoalescingSource  # noqa: PLC0415
    from autoscaler.engine.histories import range_source  # noqa: PLC0415
    from autoscaler.engine.reconciler import Reconciler  # noqa: PLC0415
    from autoscaler.service.discovery_setup import from_settings, with_discovered  # noqa: PLC0415
    from autoscaler.service.discovery_sources import split_source_failures  # noqa: PLC0415

    result = load_paths(paths, workers=default_workers())  # before any thread starts
    _print_problems(result, sys.stderr)
    problems = list(result.problems)
    policies = result.policies
    unreadable_sources = 0  # their targets cannot be planned: exit 3, as a target unreadable
    if result.templates or settings.nomad_scaling_policies:  # one discovery pass
        policies, found = with_discovered(result, from_settings(settings, watch=False))
        for problem in found:
            print(scrub(str(problem)), file=sys.stderr)
        invalid, failing = split_source_failures(found)
        problems += invalid
        unreadable_sources = len(failing)
    try:
        state = _read_only_state(state_path, password_file)
    except StateError as exc:
        _error(exc)
        return EXIT_STARTUP
    # Coalescing: a template's grouped query is sent once for all its targets; forecasts
    # read their history from Prometheus itself (range queries are not coalesced).
    prometheus = settings.source()
    reconciler = Reconciler(
        source=CoalescingSource(prometheus),
        targets=settings.targets(),
        state=state,
        history=range_source(prometheus),
    )
    evaluations: list[Evaluation] = [
        reconciler.evaluate(policy, dry_run=True, apply=False)
        for policy in policies
        if policy.enabled
    ]
    state.close()
    print(render(evaluations, output), end="")
    summary = summarize(evaluations)
    for policy, error in summary.not_evaluated:
        print(scrub(f"warning: policy {policy} not evaluated: {error}"), file=sys.stderr)
    for policy, check, error in summary.failed_checks:
        if not any(policy == name for name, _ in summary.not_evaluated):
            print(
                scrub(f"warning: policy {policy}: check {check} failed: {error}"), file=sys.stderr
            )
    if problems:
        return EXIT_INVALID
    if detailed:
        if summary.failed or unreadable_sources:
            return EXIT_NOT_EVALUATED
        return EXIT_CHANGES if summary.would_scale else EXIT_OK
    return EXIT_NOT_EVALUATED if summary.not_evaluated or unreadable_sources else EXIT_OK


def _exists(path: str, what: str = "state database") -> bool:
    """Whether `path` exists; `StateError` when a folder on the way cannot be entered
    (`Path.exists` raised PermissionError: a traceback, exit 1, where a start-up problem is
    exit 4 with one line; systemd's DynamicUser keeps its state under a root-only folder)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise StateError(
            f"cannot reach the {what} {path}: {exc.strerror or exc} (check the "
            "permissions of the folders on its path for this user)"
        ) from None
    return True


def _read_only_state(path: str | None, password_file: str | None) -> StateStore:
    """`plan` honours a state file when one exists, and never creates or locks one."""
    from autoscaler.adapters.state import MemoryStateStore, SqliteStateStore  # noqa: PLC0415

    if path and is_postgres(path):
        return open_postgres_state(path, password_file, read_only=True)
    if path and _exists(path):
        return SqliteStateStore(path, read_only=True)
    if path:  # a typo would show what a controller with no history would do: say so
        print(
            f"warning: no state database at {path}: the plan ignores recorded cooldowns "
            "and stabilization",
            file=sys.stderr,
        )
    return MemoryStateStore()


def _ignore_reloads_for_now() -> None:
    if hasattr(signal, "SIGHUP"):
        with contextlib.suppress(ValueError):  # not the main thread (tests): nothing to do
            signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _readable(path: Path) -> bool:
    """Whether the controller can read `path`: a file, or a folder it can list."""
    if path.is_dir():
        return os.access(path, os.R_OK | os.X_OK)
    return os.access(path, os.R_OK)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """`autoscaler run`: the long-lived service, or a single pass with `--once`."""
    # Imported here: FastAPI and uvicorn cost ~0.6 s that validate/plan/schema never need.
    from autoscaler.service.run import run_once, run_service  # noqa: PLC0415

    # Until the service's own handler is in place (after imports, the state, the lease):
    # a reload signal then is not the end of the process (systemd takes death by SIGHUP
    # for a clean exit, and would not restart it).
    _ignore_reloads_for_now()
    try:
        missing = [p for p in args.paths if not _exists(p, "policy file or folder")]
    except StateError as exc:  # a folder on the way the controller may not enter
        _error(exc)
        return EXIT_STARTUP
    if missing:
        # A typo in the path would otherwise run a controller with nothing to do.
        _error(f"no such policy file or folder: {', '.join(missing)}")
        return EXIT_STARTUP
    unreadable = [p for p in args.paths if not _readable(Path(p))]
    if unreadable:
        _error(
            f"cannot read the policy file or folder {', '.join(unreadable)}: check its "
            "permissions for the user the controller runs as"
        )
        return EXIT_STARTUP
    try:
        state, leadership = _open_run_state(args)
    except (StateError, AutoscalerError) as exc:
        _error(exc)
        return EXIT_STARTUP
    try:
        config = service_config_from_args(args)  # the notify URLs checked for --once too
        if args.once:
            return run_once(
                args.paths,
                settings,
                state,
                dry_run=args.dry_run,
                leadership=leadership,
                log_unchanged=args.log_decisions == "all",
                notify_urls=config.notify_urls,
            )
        return run_service(config, settings, state, leadership=leadership)
    except AutoscalerError as exc:
        _error(exc)
        return EXIT_STARTUP
    finally:
        state.close()
        if leadership is not None:
            leadership.close()


def _open_run_state(args: argparse.Namespace) -> tuple[LayeredStateStore, Leadership | None]:
    """The state `run` acts on, and with PostgreSQL the lease that says when it may.

    SQLite: one controller per file (an advisory lock). PostgreSQL: one leader per
    database; without `--ha`, a second controller is refused (after waiting up to the TTL
    for a crashed one's lease to lapse); with `--ha`, it starts as a standby.
    """
    from autoscaler.adapters.state import LayeredStateStore, SqliteStateStore  # noqa: PLC0415

    keep_for = timedelta(days=args.history_days)
    keep = args.history_max
    if not is_postgres(args.state):
        # Memory in front of the file: a write that fails never makes the controller forget.
        durable = SqliteStateStore(
            args.state, exclusive=True, keep_for=keep_for, keep_decisions=keep
        )
        # `--once` waits for every write: its exit code says whether its pass was recorded.
        linger = 0.0 if args.once else STATE_LINGER
        return LayeredStateStore(durable, linger=linger), None
    pg = open_postgres_state(
        args.state, args.state_password_file, keep_for=keep_for, keep_decisions=keep
    )
    from autoscaler.service.leadership import replicate  # noqa: PLC0415 - psycopg

    # No lingering: a replica that loses its lease drops what it has not written, and with
    # PostgreSQL every decision a replica logs is in the shared history (`--ha` relies on it).
    state = LayeredStateStore(pg)
    state.standby()  # until this replica holds the lease
    leadership = replicate(pg, state, replica=replica_id(args), ttl=args.lease_ttl, ha=args.ha)
    try:
        if args.once or not args.ha:
            leadership.take_exclusively()
    except StateError:
        state.close()
        leadership.close()
        raise
    return state, leadership
