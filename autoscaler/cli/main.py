"""The `autoscaler` command: validate, plan (dry-run preview), run, schema, simulate,
backtest, test, convert.

Exit codes: 0 success; 1 invalid policy files (or bad usage of a file); 2 bad command-line
usage (argparse); 3 `plan` or `run --once` could not evaluate some policy (`--once`: or
skipped it, stopped by SIGTERM/SIGINT); 4 startup error
(state database, listen address, an API beyond loopback without a token); 5 the output
could not be written (stdout failed: a full disk), whatever the command found.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from autoscaler import __version__
from autoscaler.cli import backtest, convert, help_text, policytest, simulate
from autoscaler.cli.completion import SHELLS, completion_script
from autoscaler.cli.exits import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_STARTUP,
    EXIT_USAGE,
    guarded_stdout,
    print_error,
)
from autoscaler.cli.logs import setup_logging
from autoscaler.cli.plan import cmd_plan
from autoscaler.cli.printable import json_safe, printable
from autoscaler.cli.report import OUTPUTS
from autoscaler.cli.run import cmd_run
from autoscaler.cli.validate import cmd_validate, print_problems
from autoscaler.config.connections import (
    CONNECTION_OPTIONS,
    NOMAD_OPTIONS,
    NOMAD_SCALING_POLICIES,
    NOMAD_TIMEOUT,
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
)
from autoscaler.config.state import is_postgres
from autoscaler.errors import AutoscalerError
from autoscaler.policy.loader import json_schema
from autoscaler.redact import scrub

# What only `plan`, `run` and discovery use (the reconciler, the state stores, requests,
# discovery) is imported inside their functions (`cli.plan`, `cli.run`, `cli.validate`):
# `validate`, `test`, `schema` and `--help` start in about half the time.

DETAILED = "--detailed-exitcode"


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
    exiting: SystemExit | None = None
    # `| head`: the output ends, the exit code is the command's; a full disk: it is 5.
    with guarded_stdout() as output:
        try:
            code = _main(arguments)
        except SystemExit as exc:  # argparse's --help, --version and usage errors
            exiting = exc
    failed = output.failed()
    if failed is not None:
        return failed
    if exiting is not None:
        raise exiting
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
        print(json_safe(json.dumps(document, indent=2)))
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
        print_error(exc)
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
            print_error(
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
            print_problems(config.problems, sys.stderr)
            return EXIT_INVALID if args.command == "validate" else EXIT_STARTUP
        sources = resolve(args, options, config.values)
    except OptionError as exc:
        parser.error(printable(scrub(str(exc))))
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
            printable(
                f"warning: {config.path}: {key} is overridden by {by} (a flag wins over a "
                "variable, a variable over the config file)"
            ),
            file=sys.stderr,
        )
