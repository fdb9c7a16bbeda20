"""Scaling target adapters (EC2 Auto Scaling Groups, Nomad task groups) and their factory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from autoscaler.adapters.targets.nomad import NomadScaler, NomadSettings
from autoscaler.core.model import AsgTarget, NomadTarget, TargetRef
from autoscaler.core.ports import ScalingTarget


@dataclass
class TargetFactory:
    """Builds one adapter per target and reuses it, so clients and sessions are shared."""

    nomad: NomadSettings = field(default_factory=NomadSettings.from_env)
    _cache: dict[str, ScalingTarget] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, ref: TargetRef) -> ScalingTarget:
        with self._lock:
            found = self._cache.get(ref.key)
            if found is None:
                found = self._build(ref)
                self._cache[ref.key] = found
            return found

    def _build(self, ref: TargetRef) -> ScalingTarget:
        if isinstance(ref, AsgTarget):
            # boto3 costs ~0.3 s to import; Nomad-only deployments never pay it.
            from autoscaler.adapters.targets.aws_asg import AsgScaler  # noqa: PLC0415

            return AsgScaler(ref)
        if isinstance(ref, NomadTarget):
            return NomadScaler(ref, self.nomad)
        raise TypeError(f"unknown target {ref!r}")
