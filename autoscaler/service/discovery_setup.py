"""Discovery as the service and the commands set it up: reading the Nomad of the settings
and AWS from its environment (`from_settings`, `discovery_for`), and, for a command that
reads it once, the policies it gives joined with the files' (`with_discovered`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from autoscaler.adapters.discovery.nomad import NomadDiscovery
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.config.connections import Settings
from autoscaler.core.model import Policy
from autoscaler.errors import PolicyWarning, Problem
from autoscaler.policy.conflicts import Located, files_first
from autoscaler.policy.loader import FileLoad, LoadResult
from autoscaler.service.discovery import Discovery, DiscoveryConfig
from autoscaler.service.shared_series import each_its_own_series
from autoscaler.service.yielding import stand_ins

if TYPE_CHECKING:
    from autoscaler.adapters.discovery.aws import AsgDiscovery


def from_settings(
    settings: Settings,
    *,
    poll: float = 30.0,
    on_change: Callable[[], None] | None = None,
    watch: bool = True,
) -> Discovery:
    """Discovery reading the Nomad of `settings` and AWS from its environment."""
    config = DiscoveryConfig(nomad_scaling_policies=settings.nomad_scaling_policies, poll=poll)
    return Discovery(
        config,
        nomad=lambda: NomadDiscovery(settings.nomad, whole_audit=not watch),
        aws=_asg_discovery,
        on_change=on_change,
        watch=watch,
    )


def discovery_for(
    *, nomad: NomadSettings | None = None, nomad_scaling_policies: bool = False
) -> Discovery:
    """Discovery of `nomad` (default: the standard NOMAD_* environment) and AWS from its
    environment, read once."""
    nomad = NomadSettings.from_env() if nomad is None else nomad
    config = DiscoveryConfig(nomad_scaling_policies=nomad_scaling_policies)
    return Discovery(
        config,
        nomad=lambda: NomadDiscovery(nomad, whole_audit=True),
        aws=_asg_discovery,
        watch=False,
    )


def _asg_discovery(region: str | None) -> AsgDiscovery:
    # boto3 costs ~0.3 s to import: only templates of Auto Scaling Groups pay for it.
    from autoscaler.adapters.discovery.aws import AsgDiscovery  # noqa: PLC0415

    return AsgDiscovery(region)


def with_discovered(
    result: LoadResult, discovery: Discovery, *, warnings: list[PolicyWarning] | None = None
) -> tuple[list[Policy], list[Problem]]:
    """The policies of `result` and those discovery gives its templates (read once now),
    with one policy per name and per target: files first, then discovered in order (a
    policy that stood aside for a template's that is refused put back: `service.yielding`).
    The discovered policies' warnings (a grouped check reading another target's series
    too) are added to `warnings` when given: they fail no command, as a file's do not."""
    discovery.read_once(result.templates)
    loads, failing = discovery(result.templates)
    loads, _ = each_its_own_series(loads)  # nothing in force: the loads' readers alone
    if warnings is not None:
        warnings.extend(w for load in loads for w in load.warnings)

    def newcomers(loads: list[FileLoad], problems: list[Problem]) -> Iterator[Located]:
        for load in loads:
            problems.extend(load.problems)
            yield from load.policies

    notes: list[Problem] = []
    while True:
        problems = list(failing)
        policies = files_first(result.policies, newcomers(loads, problems), problems)
        back = stand_ins(loads, policies)
        if back is None:
            return policies, problems + notes
        loads = back[0]
        notes += [note for _, note in back[1]]
