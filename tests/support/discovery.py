"""A policy registry that discovers with stand-ins for Nomad's and AWS's readers, read only
when the test says: what the unit tests of discovery share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

import pytest

from autoscaler.service.discovery import Discovery, DiscoveryConfig
from autoscaler.service.registry import PolicyRegistry

if TYPE_CHECKING:
    from autoscaler.adapters.discovery.aws import AsgDiscovery
    from autoscaler.adapters.discovery.nomad import NomadDiscovery


def _unasked(source: str) -> NoReturn:
    pytest.fail(f"no {source} here")


def discovering(
    folder: Path,
    *,
    nomad: object | None = None,
    aws: object | None = None,
    config: DiscoveryConfig | None = None,
) -> tuple[PolicyRegistry, Discovery]:
    """A registry of the policy files in `folder`, reloaded once, whose discovery reads
    `nomad` (for `NomadDiscovery`) and `aws` (for every region's `AsgDiscovery`) only at
    `read_once` (no watcher); asked for a reader not given, the test fails."""
    discovery = Discovery(
        config if config is not None else DiscoveryConfig(),
        nomad=lambda: cast("NomadDiscovery", nomad) if nomad is not None else _unasked("Nomad"),
        aws=lambda region: cast("AsgDiscovery", aws) if aws is not None else _unasked("AWS"),
        watch=False,
    )
    registry = PolicyRegistry([str(folder)], discover=discovery)
    registry.reload()
    return registry, discovery


def names(registry: PolicyRegistry) -> list[str]:
    """The names of the policies in force, sorted."""
    return sorted(p.name for p in registry.policies())
