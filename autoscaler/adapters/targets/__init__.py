"""Scaling target adapters (EC2 Auto Scaling Groups, Nomad task groups) and their factory."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from autoscaler.adapters.targets.nomad import NomadScaler
from autoscaler.adapters.targets.nomad_settings import NomadSettings, placement
from autoscaler.adapters.targets.nomad_watch import JobWatch
from autoscaler.core.model import AsgTarget, NomadTarget, TargetRef
from autoscaler.core.ports import ScalingTarget


@dataclass
class TargetFactory:
    """Builds one adapter per target and reuses it, so clients and sessions are shared.

    `watch_nomad` (the service) gives Nomad targets the job event stream of their namespace
    (one `JobWatch` per namespace and region, shared), so a steady target is not read
    again at every evaluation; `close` stops those streams.
    """

    nomad: NomadSettings = field(default_factory=NomadSettings.from_env)
    watch_nomad: bool = False
    _cache: dict[str, ScalingTarget] = field(default_factory=dict)
    _watches: dict[tuple[str, str | None], JobWatch] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, ref: TargetRef) -> ScalingTarget:
        with self._lock:
            found = self._cache.get(ref.key)
            if found is None:
                found = self._build(ref)
                self._cache[ref.key] = found
            return found

    def retain(self, targets: Mapping[str, TargetRef]) -> None:
        """Keep only the adapters of `targets` (by key: those the policies loaded now
        scale), and the job event streams they read, each counting their jobs alone: a
        removed target's adapter goes with what it kept. An evaluation in flight keeps the
        adapter it holds, and a stream closed under it only makes it read the job."""
        jobs: dict[tuple[str, str | None], set[str]] = {}
        for ref in targets.values():
            if isinstance(ref, NomadTarget):
                jobs.setdefault(placement(ref, self.nomad), set()).add(ref.job)
        with self._lock:
            self._cache = {key: found for key, found in self._cache.items() if key in targets}
            idle = [watch for where, watch in self._watches.items() if where not in jobs]
            self._watches = {where: w for where, w in self._watches.items() if where in jobs}
            for where, watch in self._watches.items():
                watch.retain(jobs[where])
        for watch in idle:
            watch.close()

    def sizes(self) -> tuple[int, int]:
        """Adapters built and job event streams followed."""
        with self._lock:
            return len(self._cache), len(self._watches)

    def close(self) -> None:
        """Stop the job event streams (targets built later read every time)."""
        with self._lock:
            watches, self._watches = list(self._watches.values()), {}
            self.watch_nomad = False
        for watch in watches:
            watch.close()

    def nomad_streams(self) -> list[tuple[str, str, bool]]:
        """(namespace, region or "", up) of each job event stream followed."""
        with self._lock:
            watches = list(self._watches.values())
        return [(w.namespace, w.region or "", w.up()) for w in watches]

    def nomad_watch(self, ref: NomadTarget) -> JobWatch | None:
        """The shared event stream of `ref`'s namespace and region (None: not watching).
        Called with the factory's lock held (from `_build`)."""
        if not self.watch_nomad:
            return None
        settings = self.nomad
        namespace, region = placement(ref, settings)
        watch = self._watches.get((namespace, region))
        if watch is None:
            watch = JobWatch(
                address=settings.address,
                token=settings.token,
                namespace=namespace,
                region=region,
                verify=settings.verify(),
                cert=settings.cert(),
                connect_timeout=settings.timeout,
            )
            self._watches[(namespace, region)] = watch
        return watch

    def _build(self, ref: TargetRef) -> ScalingTarget:
        builder = BUILDERS.get(ref.type)
        if builder is None:
            raise TypeError(f"no adapter for target kind {ref.type!r}: add one to BUILDERS")
        return builder(self, ref)


def _asg(factory: TargetFactory, ref: TargetRef) -> ScalingTarget:
    # boto3 costs ~0.3 s to import; Nomad-only deployments never pay it.
    from autoscaler.adapters.targets.aws_asg import AsgScaler  # noqa: PLC0415

    assert isinstance(ref, AsgTarget)
    return AsgScaler(ref)


def _nomad(factory: TargetFactory, ref: TargetRef) -> ScalingTarget:
    assert isinstance(ref, NomadTarget)
    return NomadScaler(ref, factory.nomad, watch=factory.nomad_watch(ref))


# One adapter per entry of `model.TARGET_KINDS`, by its tag (tests/unit/test_registries.py).
BUILDERS: dict[str, Callable[[TargetFactory, TargetRef], ScalingTarget]] = {
    AsgTarget.type: _asg,
    NomadTarget.type: _nomad,
}
