"""One evaluation of one policy: target status -> queries -> decide -> apply -> remember.

This is the only place where the pure core meets the adapters. It turns every failure of
an adapter into a decision that holds and says why, so callers (the CLI, the service loop,
the HTTP API) always get a `Decision` to show, never a stack trace.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime

from autoscaler.adapters.deadline import monotonic as lease_clock
from autoscaler.core import decision as core
from autoscaler.core.cooldown import plausible
from autoscaler.core.frozen import built
from autoscaler.core.model import (
    Action,
    Check,
    Decision,
    Memory,
    Observation,
    Policy,
    TargetRef,
    TargetStatus,
)
from autoscaler.core.ports import MetricSource, RangeSource, ScalingTarget, StateStore
from autoscaler.engine.decision_log import log_decision, unchanged
from autoscaler.engine.evaluation import Evaluation, safe_error
from autoscaler.engine.histories import CheckHistories
from autoscaler.engine.outcomes import (
    Applied,
    fenced,
    fenced_write,
    hold,
    not_durable,
    out_of_lease,
)
from autoscaler.engine.scrubbing import scrubbed
from autoscaler.errors import (
    NotLeader,
    QueryError,
    SourceUnavailable,
    StateError,
    TargetBusy,
    TargetDeadline,
    TargetError,
    TargetUnavailable,
)
from autoscaler.redact import scrub

# `Evaluation(...)` and `Observation(...)`, cheaper: every evaluation makes them.
_EVALUATION, _OBSERVATION = built(Evaluation), built(Observation)


def utcnow() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


class Reconciler:
    """Evaluates policies against a metric source, their targets and a state store.

    `fence`, when given, is called right before every scale call, with the instant
    (`adapters.deadline.monotonic`) the evaluation began, and raises `NotLeader` when
    this replica may not act (it lost the leader lease, or it lapsed since that instant):
    the call is then not made.
    It returns where the lease's validity ends, the scale call's `deadline`: no request
    of the call is sent from then on.
    `history` answers the range queries that forecasts and the anomaly guard read their
    past from (`engine.histories`); without it they learn only from what they evaluate.
    `log_unchanged=False` (`--log-decisions changes`) logs no line for a plain `none`
    decision (`unchanged`); it is recorded and counted all the same.
    """

    def __init__(
        self,
        *,
        source: MetricSource,
        targets: Callable[[TargetRef], ScalingTarget],
        state: StateStore,
        clock: Callable[[], datetime] = utcnow,
        fence: Callable[[float], float | None] | None = None,
        history: RangeSource | None = None,
        log_unchanged: bool = True,
        tenure: Callable[[float], None] | None = None,
        scale_up_unrecorded: bool = False,
    ) -> None:
        self._source = source
        self._scale_up_unrecorded = scale_up_unrecorded
        self._log_unchanged = log_unchanged
        self._targets = targets
        self._state = state
        self._clock = clock
        self._fence = fence
        self._tenure = tenure
        self._histories = CheckHistories(history)

    def prepare(self, policies: Iterable[Policy]) -> None:
        """Build the targets of `policies` before their first evaluation, so that targets
        reading together know of each other from the start (an ASG's group rides along in
        other targets' DescribeAutoScalingGroups calls). A target that cannot be built is
        left to its evaluation to report."""
        for policy in policies:
            if not policy.enabled:
                continue
            try:
                self._targets(policy.target)
            except Exception:  # noqa: S112 - its evaluation says why, in its decision
                continue

    def retain(self, policies: Iterable[Policy]) -> None:
        """Forget what is kept in memory for what `policies` (those loaded now) no longer
        have: the removed policies' forecast and anomaly memory, and the adapters of
        targets none of them scales (when the target factory can, `retain(keys)`). An
        evaluation in flight keeps the adapter it holds."""
        policies = list(policies)
        self._histories.retain({p.name for p in policies})
        retain = getattr(self._targets, "retain", None)
        if retain is not None:
            retain({p.target.key: p.target for p in policies})

    @property
    def histories(self) -> CheckHistories:
        return self._histories

    def evaluate(self, policy: Policy, *, dry_run: bool = False, apply: bool = True) -> Evaluation:
        """Evaluate `policy` once.

        `apply=False` is the preview used by `plan`: it reads the target and the state but
        never scales and never writes. `dry_run=True` decides, records and reports, but
        never calls the scale API.
        """
        leased = self._fence is not None or self._tenure is not None
        begun = lease_clock() if leased else 0.0  # what the fence and the tenure compare
        # Each evaluation is built once, timed as it is built (replays build many).
        evaluation = scrubbed(
            self._evaluate(
                policy, dry_run=dry_run, apply=apply, started=time.monotonic(), begun=begun
            )
        )
        if apply:
            # A scale that happened, or may have (a call unanswered: its cooldown is kept),
            # is history whatever the local tenure check says (the lease may lapse between
            # the call and here): only the database's fence, the epoch checked in the
            # write's transaction, may refuse its record.
            acted = evaluation.scaled or evaluation.maybe_scaled
            lapsed = None if acted else self._lapsed(begun)
            if lapsed is None:
                evaluation = self._record(evaluation)
            elif evaluation.error_kind != "lease":  # (else it says why already)
                # Not recorded: what it decided is not this tenure's.
                evaluation = scrubbed(fenced(evaluation, lapsed, scaled=evaluation.scaled))
            if self._log_unchanged or not unchanged(evaluation):
                log_decision(evaluation)
        return evaluation

    def _lapsed(self, begun: float) -> NotLeader | None:
        """Why this replica may not write what an evaluation begun at `begun` decided (its
        lease lapsed since, even if it came back), or None. Local and cheap: the database
        fences every write and confirms the lease before every scale call besides."""
        if self._tenure is None:
            return None
        try:
            self._tenure(begun)
        except NotLeader as exc:
            return exc
        return None

    def _evaluate(
        self, policy: Policy, *, dry_run: bool, apply: bool, started: float, begun: float
    ) -> Evaluation:
        """The evaluation (not yet scrubbed), its `duration` counted from `started`."""
        now = self._clock()
        try:
            target = self._targets(policy.target)
            status = target.status()
        except (TargetError, OSError) as exc:
            reason = f"target {policy.target} unreadable: {exc}"
            return self._unreadable(
                policy, reason, now=now, dry_run=dry_run, apply=apply, started=started
            )
        except Exception as exc:  # a library error no adapter anticipated: hold, loudly
            logging.getLogger(__name__).exception("reading target %s failed", policy.target)
            reason = f"target {policy.target} unreadable: {safe_error(exc)}"
            return self._unreadable(
                policy, reason, now=now, dry_run=dry_run, apply=apply, started=started
            )

        observations, timings, source_error = self._observe(policy, status, preview=not apply)
        if observations:
            observations = self._histories.enrich(policy, observations, now, learn=apply)
        try:
            memory = self._state.load(policy.name, policy.target.key)
        except StateError as exc:
            reason = f"state unreadable: {exc}"
            decision = core.unavailable(
                policy, now=now, reason=reason, dry_run=dry_run, current=status.count
            )
            return Evaluation(
                decision=decision,
                error=reason,
                error_kind="state",
                status=status,
                duration=time.monotonic() - started,
            )

        last = memory.last_scaled_at
        if last is not None and plausible(last, policy.cooldown, now) is None:  # far ahead
            memory = self._from_the_future(policy, memory, last, now, apply=apply)
        outcome = core.decide(
            policy,
            status=status,
            observations=observations,
            memory=memory,
            now=now,
            dry_run=dry_run,
        )
        applied = Applied(
            decision=outcome.decision,
            memory=outcome.memory,
            error=source_error,
            error_kind="source" if source_error else None,
        )
        lapsed = self._lapsed(begun) if apply else None
        if lapsed is not None:
            # The lease lapsed while this ran (a pause, a partition), even if it came back:
            # its memory and decision are from before, and another leader may have acted
            # since. Nothing is scaled or written.
            applied = fenced(applied, lapsed)
        elif apply:
            if applied.decision.changes_target and not applied.decision.dry_run:
                applied = self._apply(policy, target, applied, now, begun)
            applied = self._save(policy, applied)
        return _EVALUATION(
            decision=applied.decision,
            error=applied.error,
            error_kind=applied.error_kind,
            scaled=applied.scaled,
            maybe_scaled=applied.maybe_scaled,
            status=status,
            duration=time.monotonic() - started,
            query_seconds=timings,
            memory=applied.memory,
        )

    def _unreadable(
        self,
        policy: Policy,
        reason: str,
        *,
        now: datetime,
        dry_run: bool,
        apply: bool,
        started: float,
    ) -> Evaluation:
        """A `hold` for a target that cannot be read.

        The service (`apply`) queries nothing more: nothing can be scaled. The preview
        (`plan`) still runs every check, so a new policy's PromQL can be tried before the
        controller may read AWS or Nomad; the decision holds with `current` unknown.
        """
        if apply:
            decision = core.unavailable(policy, now=now, reason=reason, dry_run=dry_run)
            return Evaluation(
                decision=decision,
                error=reason,
                error_kind="target",
                duration=time.monotonic() - started,
            )
        observations, timings, _ = self._observe(policy, None, preview=True)
        if observations:
            observations = self._histories.enrich(policy, observations, now, learn=False)
        decision = core.without_target(
            policy, observations=observations, now=now, reason=reason, dry_run=dry_run
        )
        return Evaluation(
            decision=decision,
            error=reason,
            error_kind="target",
            duration=time.monotonic() - started,
            query_seconds=timings,
        )

    def _apply(
        self, policy: Policy, target: ScalingTarget, applied: Applied, now: datetime, begun: float
    ) -> Applied:
        """Call the scale API for the decision; a failure turns it into a `hold`.

        The action is recorded *before* the call (the cooldown it starts), so a crash right
        after the call cannot lose the cooldown (a standby that takes over honours it). A
        change is held when that record cannot be made durable: nothing is done that
        cannot be recorded, so neither a restart nor a forgotten write can act again
        inside the cooldown. With `scale_up_unrecorded` (`--scale-up-unrecorded`) a
        scale-up happens anyway and is remembered in memory, written once the state takes
        writes: for teams who rank capacity above the record; a scale-in never does. No
        scale call at all once the replica is no longer the leader (`fence`).
        """
        decision, key = applied.decision, policy.target.key
        assert decision.desired is not None
        memory = applied.memory
        before = memory.last_scaled_at
        # Not `replace` (a tenth of its cost: replays scale thousands of times); every field.
        done = Memory(
            last_scaled_at=now,
            recommendations=memory.recommendations,
            missing_data_streak=memory.missing_data_streak,
            missing_data_since=memory.missing_data_since,
        )
        scale_in = decision.action is Action.DOWN
        # The request's text first: what cannot be said is not recorded as sent either.
        message, meta = _message(decision), _meta(decision)
        try:
            self._state.save(policy.name, key, done)
        except NotLeader as exc:
            self._withdraw(key, now, before)
            return fenced(applied, exc)
        except StateError as exc:
            if scale_in or not self._scale_up_unrecorded:
                self._withdraw(key, now, before)
                change = "scale-in" if scale_in else "scale-up"
                reason = f"{change} held: it could not be recorded first (state not durable: {exc})"
                return replace(
                    applied, decision=hold(decision, reason), error=str(exc), error_kind="state"
                )
        deadline = None
        if self._fence is not None:
            try:
                deadline = self._fence(begun)
            except NotLeader as exc:
                self._withdraw(key, now, before)
                return fenced(applied, exc)
        try:
            target.scale(
                decision.desired,
                reason=message,
                meta=meta,
                expected=decision.current,
                deadline=deadline,
            )
        except TargetBusy as exc:
            self._withdraw(key, now, before)
            return replace(applied, decision=hold(decision, f"target busy, not scaled: {exc}"))
        except TargetDeadline as exc:
            # Not sent after the lease: withdrawn as any failed call, unless it may land.
            if not exc.maybe_applied:
                self._withdraw(key, now, before)
            held = hold(decision, out_of_lease(decision, exc))
            memory = done if exc.maybe_applied else memory
            return replace(
                applied,
                decision=held,
                memory=memory,
                error=str(exc),
                error_kind="scale",
                maybe_scaled=exc.maybe_applied,
            )
        except TargetError as exc:
            # A write sent and never answered may have landed: its cooldown stays, as the
            # target's own record of it may not show yet (an ASG activity not yet listed).
            landed = isinstance(exc, TargetUnavailable) and exc.maybe_applied
            if not landed:
                self._withdraw(key, now, before)
            reason = f"scale to {decision.desired} failed: {exc}"
            if landed:
                reason += "; it may have landed (no answer came): its cooldown is kept"
            held = hold(decision, reason)
            memory = done if landed else memory
            return replace(
                applied,
                decision=held,
                memory=memory,
                error=str(exc),
                error_kind="scale",
                maybe_scaled=landed,
            )
        return Applied(
            decision=decision,
            memory=done,
            error=applied.error,
            error_kind=applied.error_kind,
            scaled=True,
        )

    def _save(self, policy: Policy, applied: Applied) -> Applied:
        """Keep the policy's memory (written with the decision, see `_record`); while the
        state is known not to take writes, the decision says so."""
        try:
            self._state.remember(policy.name, policy.target.key, applied.memory)
        except NotLeader as exc:
            if applied.error_kind == "lease":
                return applied  # the hold already says why
            return fenced(applied, exc, scaled=applied.scaled)
        problem = self._state.durability_problem()
        if problem is None:
            return applied
        return not_durable(applied, problem, scale_up_unrecorded=self._scale_up_unrecorded)

    def _from_the_future(
        self, policy: Policy, memory: Memory, last: datetime, now: datetime, *, apply: bool
    ) -> Memory:
        """`memory` with a last action dated more than a cooldown after `now` moved to `now`.

        Such a record comes from a clock that was ahead when it was written (stepped back
        since, or another replica's). Counted as it is, it held every change until that
        time, hours perhaps, and the stores keep the latest time they were given: so it is
        replaced in the state (as a withdrawn action is) by a cooldown starting now.
        """
        logging.getLogger(__name__).warning(
            "policy %s: its last scaling action is recorded at %s, after now (%s): a clock "
            "was ahead when it was written; counting its cooldown from now",
            policy.name,
            last.isoformat(),
            now.isoformat(),
        )
        if apply:
            self._withdraw(policy.target.key, last, now)
        return replace(memory, last_scaled_at=now)

    def _withdraw(self, target_key: str, at: datetime, previous: datetime | None) -> None:
        """Undo the scaling action recorded ahead of a scale call that did not happen."""
        try:
            self._state.withdraw(target_key, at=at, previous=previous)
        except StateError as exc:
            # The database keeps a cooldown that did not happen: it only delays.
            logging.getLogger(__name__).warning("could not withdraw a scaling action: %s", exc)

    def _observe(
        self, policy: Policy, status: TargetStatus | None, *, preview: bool = False
    ) -> tuple[list[Observation], tuple[tuple[str, float], ...], str | None]:
        """Run each check's query; a check that cannot be read is an Observation with an error.

        A target that is not ready holds anyway, so its queries are spared, except in a
        preview, which shows every check's value.
        """
        observations: list[Observation] = []
        timings: list[tuple[str, float]] = []
        unreachable: str | None = None
        if status is not None and not status.ready and not status.scale_up_allowed and not preview:
            return observations, (), None  # the target holds anyway; spare Prometheus
        for check in policy.checks:
            if check.unsupported is not None:
                observations.append(Observation(check=check.name, error=check.unsupported))
                continue
            if check.query is None:
                continue
            if unreachable is not None:
                # Each query would wait out its own retries: fail the rest at once, so a
                # Prometheus outage costs one deadline per policy, not one per check.
                observations.append(Observation(check=check.name, error=unreachable))
                continue
            started = time.monotonic()
            try:
                # (`_read` of a check of its own query, inlined: every evaluation reads one)
                value = (
                    self._read(policy, check) if check.select else self._source.query(check.query)
                )
            except SourceUnavailable as exc:
                observations.append(Observation(check=check.name, error=str(exc)))
                unreachable = f"Prometheus unreachable: {exc}"
            except QueryError as exc:
                observations.append(Observation(check=check.name, error=str(exc)))
            else:
                if math.isfinite(value):
                    observations.append(_OBSERVATION(check=check.name, value=value))
                else:
                    observations.append(Observation(check=check.name, error=f"value is {value}"))
            timings.append((check.name, time.monotonic() - started))
        return observations, tuple(timings), unreachable

    def _read(self, policy: Policy, check: Check) -> float:
        """The check's value: its own query's, or its series of a grouped query.

        A grouped answer may serve every target evaluated within the interval (the
        scheduler's `fresh_since` keeps it to one tick: one query per template per tick); a
        target missing from it fails only its own check.
        """
        assert check.query is not None
        if not check.select:
            return self._source.query(check.query)
        reuse = policy.interval.total_seconds()
        return self._source.query_series(check.query, reuse=reuse).pick(check.select)

    def _record(self, evaluation: Evaluation) -> Evaluation:
        """Write the decision (and the memory kept with it) to the history before anyone
        hears of it: when that fails, the decision says it is not durable, in what is
        reported and in the version the state keeps to write later."""
        try:
            self._state.record(evaluation.decision)
        except NotLeader as exc:
            if evaluation.error_kind == "lease":
                return evaluation  # the decision already says it was not recorded
            amended = fenced_write(evaluation, exc, scaled=evaluation.scaled)
        except StateError as exc:
            if evaluation.error_kind == "state":
                return evaluation  # the decision already says why
            amended = not_durable(
                evaluation, str(exc), scale_up_unrecorded=self._scale_up_unrecorded
            )
        else:
            return evaluation
        amended = scrubbed(amended)  # the new reason quotes the database's error
        if amended.error_kind == "state":
            with contextlib.suppress(StateError):  # the pending version gets the reason
                self._state.record(amended.decision)
        return amended


def _message(decision: Decision) -> str:
    """The human message recorded on the target (Nomad scale events)."""
    return scrub(f"autoscaler policy {decision.policy}: " + "; ".join(decision.reasons))


def _meta(decision: Decision) -> dict[str, str]:
    meta = {"autoscaler.policy": decision.policy}
    for check in decision.checks:
        if check.value is not None:
            meta[f"autoscaler.check.{check.name}"] = f"{check.value:g}"
    return meta
