"""What the HTTP API reads of the running service: each policy as it stands, the
decision history, readiness, leadership and the metrics.

`BackendReads` is the read half of `api.http.Backend`; the `Controller` (the other half:
reload, evaluate, alerts) is one, and sets the attributes it declares. Nothing here
changes the service: a standby answers every read, from the shared database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from autoscaler.adapters.state import LayeredStateStore
from autoscaler.adapters.state.layered import WHILE_NOT_DURABLE
from autoscaler.api.models import (
    CooldownOut,
    DecisionList,
    DecisionOut,
    LeaderOut,
    LoadError,
    PolicyList,
    PolicyOut,
    Role,
)
from autoscaler.core.cooldown import cooldown_left, last_action, plausible
from autoscaler.core.model import Decision, Policy
from autoscaler.core.ports import MetricSource, StateStore
from autoscaler.engine.evaluation import Evaluation
from autoscaler.errors import AutoscalerError, PolicyNotFound, StateError
from autoscaler.redact import scrub
from autoscaler.service.discovery_sources import is_source_failure
from autoscaler.service.leadership import LEADER, Leadership
from autoscaler.service.registry import PolicyRegistry
from autoscaler.service.scheduler import Scheduler
from autoscaler.service.telemetry import Telemetry

READINESS_CACHE = 2.0  # seconds a Prometheus ping result is reused by /readyz


class BackendReads:
    """The API's reads of the live service state; see the module docstring."""

    registry: PolicyRegistry
    scheduler: Scheduler
    state: StateStore
    source: MetricSource
    telemetry: Telemetry
    leadership: Leadership | None
    clock: Callable[[], datetime]
    dry_run: bool
    _ping_lock: threading.Lock
    _ping: tuple[float, str | None] | None

    def role(self) -> Role:
        if self.leadership is None or self.leadership.acting():
            return "leader"
        return "standby"

    def leader(self) -> LeaderOut:
        if self.leadership is None:
            return LeaderOut(
                ha=False, role="leader", replica="single", leader="single", epoch=None,
                lease_expires_at=None, lease_ttl_seconds=None, problem=None,
            )  # fmt: skip
        view = self.leadership.view()
        return LeaderOut(
            ha=view.ha,
            role=self.role(),
            replica=view.replica,
            leader=view.leader,
            epoch=view.epoch,
            lease_expires_at=view.lease_expires_at,
            lease_ttl_seconds=view.lease_ttl_seconds,
            problem=view.problem,
        )

    def _standby_message(self) -> str:
        view = self.leader()
        who = f"replica {view.leader}" if view.leader else "no replica right now"
        return f"this replica ({view.replica}) is a standby: the leader evaluates ({who})"

    def list_policies(self) -> PolicyList:
        return PolicyList(
            policies=[self._view(p) for p in self.registry.policies()],
            load_errors=[LoadError.of(p) for p in self.registry.problems()],
            loaded_at=self.registry.loaded_at,
            role=self.role(),
            load_warnings=[LoadError.of(w) for w in self.registry.warnings()],
        )

    def get_policy(self, name: str) -> PolicyOut:
        policy = self.registry.get(name)
        if policy is None:
            raise PolicyNotFound(name)
        return self._view(policy)

    def decisions(self, policy: str | None, limit: int) -> DecisionList:
        found = self.state.history(policy=policy, limit=limit)  # StateError: the API says 503
        return DecisionList(decisions=[DecisionOut.of(d) for d in found])

    def readiness(self) -> str | None:
        reason = self._readiness()
        return None if reason is None else scrub(reason)

    def _readiness(self) -> str | None:
        if self.scheduler.stopping:
            return "shutting down"
        if not self.registry.policies():
            found = self.registry.problems()
            sources = sum(1 for p in found if is_source_failure(p))
            more = ""
            if len(found) > sources:
                more += f"; {len(found) - sources} problem(s) in the policy files"
            if sources:
                more += f"; {sources} discovery source(s) failing"
            if more:
                more += ", see /v1/policies"
            return f"no valid policy loaded from {', '.join(self.registry.paths)}{more}"
        lease = self.leadership.problem() if self.leadership is not None else None
        if lease is not None:
            return lease
        state = self.state.durability_problem()
        if state is not None:
            return f"state not durable: {state}; {WHILE_NOT_DURABLE}"
        return self._prometheus_problem()

    def metrics(self) -> tuple[bytes, str]:
        return self.telemetry.render()

    def _prometheus_problem(self) -> str | None:
        """None when Prometheus answered a ping recently, else why not (cached briefly)."""
        with self._ping_lock:
            now = time.monotonic()
            if self._ping is not None and now - self._ping[0] < READINESS_CACHE:
                return self._ping[1]
            try:
                self.source.ping()
                problem = None
            except AutoscalerError as exc:
                problem = f"Prometheus unreachable: {exc}"
            self._ping = (time.monotonic(), problem)
            return problem

    def _view(self, policy: Policy) -> PolicyOut:
        now = self.clock()
        slot = self.scheduler.view(policy.name)
        leading = self.role() == LEADER
        # A standby's own last run (if it led before) is stale: the shared history is not.
        last = slot.last if slot and leading else None
        decision: Decision | None = last.decision if last else self._last_recorded(policy.name)
        error, error_kind = (last.error, last.error_kind) if last else (None, None)
        kept = self._unrecorded(policy.name, decision) if last else None
        if kept is not None:  # reported before its write, which then failed: say so
            error = self.state.durability_problem() or kept.reasons[-1]
            decision, error_kind = kept, "state"
        next_at = None
        if slot is not None and slot.next_in is not None and leading:
            next_at = now + timedelta(seconds=slot.next_in)
        return PolicyOut(
            name=policy.name,
            description=policy.description,
            enabled=policy.enabled,
            dry_run=policy.dry_run or self.dry_run,
            target=str(policy.target),
            target_type=policy.target.type,
            min=policy.min,
            max=policy.max,
            interval_seconds=policy.interval.total_seconds(),
            triggers=list(policy.triggers.alerts),
            source=policy.source.file,
            current=decision.current if decision else None,
            desired=decision.desired if decision else None,
            last_decision=DecisionOut.of(decision) if decision else None,
            evaluating=bool(slot and slot.running),
            next_evaluation_at=next_at,
            cooldown_remaining=self._cooldown(policy, now, last),
            last_error=error,
            last_error_kind=error_kind,
            load_errors=[LoadError.of(p) for p in self.registry.problems_of(policy)],
            load_warnings=[LoadError.of(w) for w in self.registry.warnings_of(policy)],
        )

    def _unrecorded(self, name: str, shown: Decision | None) -> Decision | None:
        """`shown` as the state keeps it when its write failed after it was reported (it
        lingered, see `LayeredStateStore.unrecorded`), saying so; else None."""
        if shown is None or not isinstance(self.state, LayeredStateStore):
            return None
        kept = self.state.unrecorded(name)
        return kept if kept is not None and kept.time == shown.time else None

    def _last_recorded(self, name: str) -> Decision | None:
        """After a restart, the last decision from the history until the first evaluation."""
        try:
            found = self.state.history(policy=name, limit=1)
        except StateError:
            return None
        return found[0] if found else None

    def _cooldown(self, policy: Policy, now: datetime, last: Evaluation | None) -> CooldownOut:
        """What `decide` would find of each cooldown now: the same rule, the same inputs."""
        try:
            ours = self.state.load(policy.name, policy.target.key).last_scaled_at
        except StateError:
            ours = None
        theirs = last.status.last_scaled_at if last and last.status else None
        theirs = plausible(theirs, policy.cooldown, now)
        left = cooldown_left(policy.cooldown, last_action(ours, theirs), now)
        return CooldownOut(
            up_seconds=left.up.total_seconds(),
            down_seconds=left.down.total_seconds(),
            last_scaled_at=left.last_scaled_at.astimezone(UTC) if left.last_scaled_at else None,
        )
