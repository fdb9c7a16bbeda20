"""`autoscaler validate`: every problem and warning of the policy files, one a line, and
with `--discover` the policies the templates expand to, checked as well.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from autoscaler.cli.exits import EXIT_INVALID, EXIT_OK, EXIT_STARTUP, print_error
from autoscaler.cli.printable import printable
from autoscaler.core.names import counted, name_list
from autoscaler.errors import AutoscalerError, PolicyWarning
from autoscaler.policy.loader import load_paths
from autoscaler.policy.parallel import default_workers
from autoscaler.redact import scrub

if TYPE_CHECKING:
    from autoscaler.adapters.targets.nomad_settings import NomadSettings


def print_problems(problems: Iterable[object], out: TextIO) -> None:
    """Each problem or warning (`FILE:LINE: FIELD: warning: message`), one a line, its
    secrets masked and its control characters escaped."""
    for problem in problems:
        print(printable(scrub(str(problem))), file=out)


def cmd_validate(
    paths: Sequence[str],
    out: TextIO,
    *,
    discover: bool = False,
    nomad_scaling_policies: bool = False,
    nomad: Callable[[], NomadSettings] | None = None,
    now: datetime | None = None,
) -> int:
    """`autoscaler validate`: one `FILE:LINE: FIELD: message` line per problem, and one
    `FILE:LINE: FIELD: warning: message` line per warning (which alone fails nothing).

    Offline, templates are checked on their own; with `discover`, they are also expanded
    with one discovery pass and every expanded policy is checked (by its expanded name).
    `nomad` gives the Nomad settings (default: NOMAD_* variables), built only then, so a
    bad one never fails an offline check. `now` (default: the clock's time) is when a
    one-off schedule that ended is a warning.
    """
    now = datetime.now(UTC) if now is None else now
    with _fewer_collections():
        result = load_paths(paths, workers=default_workers(), now=now)
    print_problems([*result.problems, *result.warnings], out)
    if result.problems:
        return EXIT_INVALID
    names = name_list([p.name for p in result.policies])
    templates = ""
    if result.templates:
        listed = "; ".join(t.describe() for t in result.templates)
        templates = f" and {counted(len(result.templates), 'template', 'templates')} ({listed})"
    valid = counted(len(result.policies), "policy", "policies")
    files = counted(len(result.files), "file", "files")
    # Templates alone have no policy to name (it read "0 policies and 1 template (…) valid
    # in 1 file: none").
    named = "" if templates and not result.policies else f": {names}"
    print(printable(f"{valid}{templates} valid in {files}{named}"), file=out)
    if not discover:
        return EXIT_OK
    from autoscaler.service.discovery_setup import discovery_for, with_discovered  # noqa: PLC0415

    try:
        discovery = discovery_for(
            nomad=None if nomad is None else nomad(),
            nomad_scaling_policies=nomad_scaling_policies,
        )
    except AutoscalerError as exc:
        print_error(exc)
        return EXIT_STARTUP
    warnings: list[PolicyWarning] = []
    policies, problems = with_discovered(result, discovery, warnings=warnings)
    print_problems([*problems, *warnings], out)
    found = policies[len(result.policies) :]
    shown = name_list([p.name for p in found])
    print(printable(f"{counted(len(found), 'policy', 'policies')} discovered: {shown}"), file=out)
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
