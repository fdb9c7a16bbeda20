"""`autoscaler plan`: every enabled policy evaluated once, read-only, and printed (the
dry-run preview), with an exit code a script can act on (`--detailed-exitcode`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from autoscaler.cli.exits import (
    EXIT_CHANGES,
    EXIT_INVALID,
    EXIT_NOT_EVALUATED,
    EXIT_OK,
    EXIT_STARTUP,
    print_error,
)
from autoscaler.cli.printable import printable
from autoscaler.cli.report import render, summarize
from autoscaler.cli.run import exists
from autoscaler.cli.validate import print_problems
from autoscaler.config.connections import Settings
from autoscaler.config.state import is_postgres, open_postgres_state
from autoscaler.errors import PolicyWarning, StateError
from autoscaler.policy.loader import load_paths
from autoscaler.policy.parallel import default_workers
from autoscaler.redact import scrub

if TYPE_CHECKING:
    from autoscaler.core.ports import StateStore
    from autoscaler.engine.evaluation import Evaluation


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
    print_problems([*result.problems, *result.warnings], sys.stderr)
    problems = list(result.problems)
    policies = result.policies
    unreadable_sources = 0  # their targets cannot be planned: exit 3, as a target unreadable
    if result.templates or settings.nomad_scaling_policies:  # one discovery pass
        warned: list[PolicyWarning] = []  # e.g. a schedule clamped into an owner's max
        discovery = from_settings(settings, watch=False)
        policies, found = with_discovered(result, discovery, warnings=warned)
        print_problems([*found, *warned], sys.stderr)
        invalid, failing = split_source_failures(found)
        problems += invalid
        unreadable_sources = len(failing)
    try:
        state = _read_only_state(state_path, password_file)
    except StateError as exc:
        print_error(exc)
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
        print(printable(scrub(f"warning: policy {policy} not evaluated: {error}")), file=sys.stderr)
    for policy, check, error in summary.failed_checks:
        if not any(policy == name for name, _ in summary.not_evaluated):
            warning = scrub(f"warning: policy {policy}: check {check} failed: {error}")
            print(printable(warning), file=sys.stderr)
    if problems:
        return EXIT_INVALID
    if detailed:
        if summary.failed or unreadable_sources:
            return EXIT_NOT_EVALUATED
        return EXIT_CHANGES if summary.would_scale else EXIT_OK
    return EXIT_NOT_EVALUATED if summary.not_evaluated or unreadable_sources else EXIT_OK


def _read_only_state(path: str | None, password_file: str | None) -> StateStore:
    """`plan` honours a state file when one exists, and never creates or locks one."""
    from autoscaler.adapters.state import MemoryStateStore, SqliteStateStore  # noqa: PLC0415

    if path and is_postgres(path):
        return open_postgres_state(path, password_file, read_only=True)
    if path and exists(path):
        return SqliteStateStore(path, read_only=True)
    if path:  # a typo would show what a controller with no history would do: say so
        print(
            f"warning: no state database at {path}: the plan ignores recorded cooldowns "
            "and stabilization",
            file=sys.stderr,
        )
    return MemoryStateStore()
