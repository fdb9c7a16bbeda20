"""What discovery found: scalable objects and the settings their owners attached to them.

Discovery adapters (Nomad, AWS) fill these in from their APIs; policy templates turn them
into policies (`policy.templates`), and Nomad Autoscaler's own policies are translated
(`policy.nomad_autoscaler`). Plain frozen values, compared as a whole, so a watcher can
tell whether anything that matters changed since its last look. With `__slots__`: a
template over 10,000 jobs keeps 10,000 of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class NomadGroup:
    """A task group of a Nomad service job, with its job's `meta` overlaid by its own."""

    namespace: str
    job: str
    group: str
    meta: Mapping[str, str] = field(default_factory=dict, hash=False)
    region: str | None = None

    @property
    def key(self) -> str:
        """The key of the target it becomes (`NomadTarget.key`)."""
        return f"nomad/{self.region or '-'}/{self.namespace}/{self.job}/{self.group}"

    def __str__(self) -> str:
        return f"Nomad job {self.job!r} group {self.group!r} (namespace {self.namespace})"


@dataclass(frozen=True, kw_only=True, slots=True)
class AsgGroup:
    """An EC2 Auto Scaling Group and its tags."""

    name: str
    region: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        """The key of the target it becomes (`AsgTarget.key`)."""
        return f"aws-asg/{self.region or '-'}/{self.name}"

    def __str__(self) -> str:
        return f"Auto Scaling Group {self.name!r}" + (f" ({self.region})" if self.region else "")


@dataclass(frozen=True, kw_only=True)
class NomadScalingPolicy:
    """One of Nomad's scaling policies (a group `scaling` block), as
    `GET /v1/scaling/policy/:id` gives it: `policy` is its `Policy` map, verbatim."""

    id: str
    type: str = "horizontal"
    enabled: bool = True
    min: int | None = None
    max: int | None = None
    target: Mapping[str, str] = field(default_factory=dict, hash=False)
    policy: Mapping[str, Any] = field(default_factory=dict, hash=False)
    modify_index: int = 0

    def __str__(self) -> str:
        t = self.target
        return (
            f"Nomad scaling policy {self.id} (job {t.get('Job', '?')!r} group "
            f"{t.get('Group', '?')!r}, namespace {t.get('Namespace') or 'default'})"
        )
