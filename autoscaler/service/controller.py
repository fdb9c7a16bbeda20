"""The running service's brain: live policies, their schedule, telemetry, and what the API sees.

`Controller` ties the registry (which policies), the scheduler (when), the reconciler
(what to do) and the side channels (metrics, notifications) together, and implements
`api.http.Backend`, so the HTTP layer never touches any of them directly. It raises the
domain errors of `autoscaler.errors` (`PolicyNotFound`, `ServiceBusy`, ...); which HTTP
status each one becomes is the API's business alone.

With `--ha` a `Leadership` says whether this replica leads: a standby loads and validates
the policies and answers every read (from the shared database), but dispatches no
evaluation and refuses `POST .../evaluate` (`Standby`, 503 naming the leader).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from datetime import UTC, datetime, timedelta
from typing import Any

from autoscaler.adapters.sources import coalesce
from autoscaler.adapters.state import LayeredStateStore
from autoscaler.api.lanes import Lane
from autoscaler.api.models import (
    AlertOut,
    CooldownOut,
    DecisionList,
    DecisionOut,
    EvaluationOut,
    LeaderOut,
    LoadError,
    PolicyList,
    PolicyOut,
    ReloadOut,
    Role,
)
from autoscaler.core.cooldown import cooldown_left, last_action, plausible
from autoscaler.core.model import Decision, Policy
from autoscaler.core.ports import MetricSource, StateStore
from autoscaler.engine.reconciler import Evaluation, Reconciler, safe_error, utcnow
from autoscaler.errors import (
    AutoscalerError,
    EvaluationCancelled,
    EvaluationFailed,
    EvaluationTimeout,
    InvalidRequest,
    NotLeader,
    PolicyDisabled,
    PolicyNotFound,
    ServiceBusy,
    ServiceError,
    ShuttingDown,
    Standby,
    StateError,
)
from autoscaler.policy.conflicts import same_target
from autoscaler.redact import scrub
from autoscaler.service import alerts
from autoscaler.service.discovery_sources import is_source_failure
from autoscaler.service.leadership import LEADER, Leadership
from autoscaler.service.notify import Notifier
from autoscaler.service.registry import PolicyRegistry, ReloadOutcome
from autoscaler.service.retention import Retention
from autoscaler.service.scheduler import Scheduler
from autoscaler.service.telemetry import Telemetry

log = logging.getLogger("autoscaler.service")

READINESS_CACHE = 2.0  # seconds a Prometheus ping result is reused by /readyz
EVALUATE_TIMEOUT = 60.0  # seconds `POST .../evaluate` waits for its evaluation
RETRY_AFTER = 1  # seconds a client should wait when a reload is rescheduling the policy
# Previews (`?dry_run=true`) evaluate in the request, each up to 3 x --query-timeout: at
# most this many at a time, on threads of their own, and this many under way (running or
# waiting) before one more is refused with 503 and a Retry-After of so many seconds.
PREVIEW_THREADS = 4
PREVIEW_LIMIT = 16
PREVIEW_RETRY_AFTER = 5


class Controller:
    """The live service state behind the HTTP API; see the module docstring."""

    def __init__(
        self,
        *,
        registry: PolicyRegistry,
        reconciler: Reconciler,
        state: StateStore,
        source: MetricSource,
        telemetry: Telemetry,
        notifier: Notifier,
        dry_run: bool = False,
        workers: int = 4,
        clock: Callable[[], datetime] = utcnow,
        leadership: Leadership | None = None,
    ) -> None:
        self.registry = registry
        self.reconciler = reconciler
        self.state = state
        self.source = source
        self.telemetry = telemetry
        self.notifier = notifier
        self.dry_run = dry_run
        self.leadership = leadership
        self.clock = leadership.clock if leadership is not None else clock
        self.scheduler = Scheduler(
            self._evaluate,
            workers=workers,
            on_result=self._on_result,
            dry_run=dry_run,
            clock=self.clock,
            gate=leadership.may_dispatch if leadership is not None else None,
        )
        self.retention = Retention(state, clock=self.clock)
        self._reload_lock = threading.Lock()
        self._heirs: dict[str, Policy] = {}  # a new policy's name -> the one it took over from
        self._heirs_lock = threading.Lock()
        self._ping_lock = threading.Lock()
        self._ping: tuple[float, str | None] | None = None
        self._previews = Lane(
            "previews",
            threads=PREVIEW_THREADS,
            limit=PREVIEW_LIMIT,
            retry_after=PREVIEW_RETRY_AFTER,
        )
        self._requests = Lane("evaluation requests", threads=2)  # the trigger, not the wait

    # --- evaluation and its side channels ---------------------------------------------------

    def _inherit(self, carried: list[tuple[Policy, Policy]]) -> None:
        """Remember to carry each old policy's memory to its successor again before the
        successor's first run (see `_carry_memory`)."""
        with self._heirs_lock:
            for old, policy in carried:
                self._heirs[policy.name] = old

    def _evaluate(self, policy: Policy, fresh_since: float | None) -> Evaluation:
        if self._heirs:  # a policy that took over a target: its predecessor's last run
            with self._heirs_lock:  # has ended (the scheduler waited for it); carry again
                old = self._heirs.pop(policy.name, None)
            if old is not None:
                _copy_memory(self.state, old, policy)
        # A triggered run must not reuse a query answered before its trigger.
        with coalesce.fresh_since(fresh_since):
            return self.reconciler.evaluate(policy, dry_run=self.dry_run)

    def _on_result(self, policy: Policy, evaluation: Evaluation | None) -> None:
        if evaluation is None:
            self.telemetry.crashed(policy.name)
            return
        self.telemetry.observe(evaluation)
        if evaluation.decision.changes_target:
            self.notifier.notify(evaluation.decision)
        else:  # a dry-run notice comes again once its would-be action went away
            self.notifier.settled(evaluation.decision.policy)

    # --- Backend: control ------------------------------------------------------------------

    def reload(self) -> ReloadOut:
        """Re-read the policy files and reschedule; safe to call from any thread."""
        with self._reload_lock:
            before = self.registry.policies()
            try:
                outcome = self.registry.reload()
            except OSError as exc:  # the folder unreadable (the files' own errors are problems)
                raise ServiceError(
                    f"cannot read the policy files: {exc}; the policies in force keep running"
                ) from exc
            self._apply(before, outcome, files_read=True)
        return ReloadOut(
            changed=outcome.changed,
            added=list(outcome.added),
            updated=list(outcome.updated),
            removed=list(outcome.removed),
            kept_files=list(outcome.kept),
            load_errors=[LoadError.of(p) for p in outcome.problems],
            load_warnings=[LoadError.of(w) for w in outcome.warnings],
        )

    def rediscover(self) -> None:
        """Apply a discovery change (targets found, changed or gone) and reschedule; like a
        reload, without reading the policy files again. Safe to call from any thread."""
        with self._reload_lock:
            before = self.registry.policies()
            outcome = self.registry.refresh()
            self._apply(before, outcome, files_read=False)

    def _apply(self, before: list[Policy], outcome: ReloadOutcome, *, files_read: bool) -> None:
        """Put the registry's policies in force after a reload or a discovery change (with
        the reload lock held): memory carried to successors, targets prepared, schedule,
        metrics, what the removed ones kept dropped."""
        policies = self.registry.policies()
        self._inherit(_carry_memory(self.state, before, policies, added=outcome.added))
        self.reconciler.prepare(policies)
        self.scheduler.set_policies(policies)
        self.telemetry.loaded(
            policies, outcome.policy_problems, removed=outcome.removed, files_read=files_read
        )
        self._retire(policies)
        if outcome.changed:
            settle_heap()

    def _retire(self, policies: list[Policy]) -> None:
        """After a change of the policies (with the reload lock held): what the process
        keeps per policy or target goes with those removed (as their metric series in
        `Telemetry.loaded`); the state store's copy in memory goes only once written, and
        its durable copy after the retention (`service.retention`), so a policy that
        comes back soon still reads its cooldown and windows there."""
        names = {p.name for p in policies}
        with self._heirs_lock:  # a successor removed before its first run inherits nothing
            self._heirs = {n: old for n, old in self._heirs.items() if n in names}
        self.reconciler.retain(policies)
        self.notifier.retain(names)
        targets = {p.target.key for p in policies}
        retain = getattr(self.state, "retain", None)
        if retain is not None:
            retain(names, targets)
        self.retention.loaded(policies, names, targets)
        if self.role() == LEADER:
            self.retention.tidy()

    def tidy(self) -> None:
        """Drop the durable memory of policies removed longer than the retention ago, when
        a tidying is due (the leader only). Safe to call from any thread."""
        if self.role() != LEADER:
            return
        with self._reload_lock:
            self.retention.tidy()

    async def evaluate(self, name: str, *, preview: bool) -> EvaluationOut:
        """Evaluate `name` now, or preview it; awaited on the API's event loop.

        Waiting for the scheduler holds no thread: about 40 calls waiting each held one of
        the API's shared pool, and `/healthz`, `/readyz` and the webhook queued behind
        them. What blocks (the registry's lock, held through a reload) runs in lanes of
        its own; a preview, which evaluates in the request, in the previews' lane (past
        `PREVIEW_LIMIT` under way, `ServiceBusy`: 503 with Retry-After)."""
        if preview:
            evaluation = await self._previews.run(lambda: self._preview(name))
            return _evaluation_out(evaluation, preview=True)
        future = await self._requests.run(lambda: self._trigger(name))
        if not await _resolved(future, EVALUATE_TIMEOUT):
            raise EvaluationTimeout(f"policy {name!r} is still evaluating; see /v1/decisions")
        try:
            evaluation = future.result(timeout=0)
        except CancelledError:
            raise EvaluationCancelled() from None
        except Exception as exc:
            raise EvaluationFailed(f"evaluation failed: {safe_error(exc)}") from None
        return _evaluation_out(evaluation, preview=False)

    def _preview(self, name: str) -> Evaluation:
        """`name` evaluated without scaling, recording or remembering (blocks)."""
        policy = self.registry.get(name)
        if policy is None:
            raise PolicyNotFound(name)
        with coalesce.fresh_since(time.monotonic()):
            return self.reconciler.evaluate(policy, dry_run=True, apply=False)

    def _trigger(self, name: str) -> Future[Evaluation]:
        """Ask the scheduler to evaluate `name` at once; its future (the scheduler resolves
        it), or the domain error saying why it cannot."""
        policy = self.registry.get(name)
        if policy is None:
            raise PolicyNotFound(name)
        if not policy.enabled:
            raise PolicyDisabled(name)
        if self.role() != LEADER:
            # No Retry-After: retrying here helps only after a failover (the message names
            # the leader); clients that honour it retried a standby every second.
            raise Standby(self._standby_message())
        future = self.scheduler.trigger(name)
        if future is None:
            raise self._not_scheduled(name)
        self.telemetry.triggered.labels(name, "api").inc()
        return future

    def _not_scheduled(self, name: str) -> ServiceError:
        """Why an enabled policy could not be triggered: shutdown, or a reload mid-swap."""
        if self.scheduler.stopping:
            return ShuttingDown()
        # The registry and the scheduler are swapped one after the other by a reload.
        policy = self.registry.get(name)
        if policy is None:
            return PolicyNotFound(name)
        if not policy.enabled:
            return PolicyDisabled(name)
        return ServiceBusy(
            f"policy {name!r} is not scheduled right now (a reload is in progress); try again",
            retry_after=RETRY_AFTER,
        )

    def alert(self, payload: dict[str, Any]) -> AlertOut:
        """Trigger every policy whose `triggers.alerts` names an alert of the notification."""
        try:
            received = alerts.from_webhook(payload)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        for alert in received:
            # Alertmanager sends these two; anything else is counted as `other`, so a
            # caller cannot make one series per word it sends.
            status = alert.status if alert.status in ("firing", "resolved") else "other"
            self.telemetry.alerts.labels(status).inc()
        if self.role() != LEADER:
            return AlertOut(received=len(received), triggered=[])  # the leader's copy acts
        names = alerts.policies_to_trigger(received, self.registry.policies())
        triggered = []
        for name in names:
            if self.scheduler.trigger(name) is not None:
                triggered.append(name)
                self.telemetry.triggered.labels(name, "alert").inc()
        if triggered:
            # Quoted and cut short: alert names are a caller's text, and a newline in one
            # would forge a log line in the text format.
            which = ", ".join(sorted({f"{a.name!r} ({a.status!r})" for a in received if a.name}))
            if len(which) > 2000:
                which = which[:2000] + "…"
            log.info("alerts %s trigger policies %s", which, ", ".join(triggered))
        return AlertOut(received=len(received), triggered=triggered)

    # --- Backend: reads ----------------------------------------------------------------------

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
            return (
                f"state not durable: {state}; decisions are kept in memory and scale-in is "
                "held until they can be recorded"
            )
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


# Young objects the collector lets pile up in the service before it looks at them. An
# evaluation makes hundreds of container objects that die by reference count; Python's
# default (700) ran about five collections a second at 10,000 policies, which found almost
# nothing and moved what was merely in flight into older generations, for later and
# longer collections to walk: 8 to 12 % of the service's CPU. At 10,000 it ran one
# collection every 15 to 20 s (bench.service, templated 10,000: collector time 1.1 to
# 1.7 s -> 0.26 s over 45 s, RSS unchanged); only cyclic garbage waits longer.
SERVICE_GC_THRESHOLD = 10_000


def collect_less_often() -> None:
    """Raise the youngest generation's threshold to `SERVICE_GC_THRESHOLD`; a higher one
    is kept, and a threshold of 0 (collection turned off on purpose) stays 0."""
    first, *rest = gc.get_threshold()
    if first != 0:
        gc.set_threshold(max(first, SERVICE_GC_THRESHOLD), *rest)


# A full collection at 10,000 policies takes a few tenths of a second of CPU: after one,
# the next waits this many times as long, however often discovery changes the policies
# (at most 2 % of a core on settling).
SETTLE_SPACING = 50
_next_settle = 0.0


def settle_heap(*, now: float | None = None) -> bool:
    """After the policies changed: collect what the old set left, then keep what is alive
    now (the policies, their targets, caches) out of later full collections. False when
    the last settling was too recent (`SETTLE_SPACING`); nothing is done then.

    At 10,000 policies the objects a reload leaves in place are most of the heap, and every
    full collection walked them all again to find them alive (`gc.freeze`, as CPython's
    documentation suggests for long-lived servers; 4 % of the service's CPU went to the
    collector). Unfrozen first, so what an earlier settling froze and is garbage now is
    collected; what dies by reference count is freed as always, frozen or not. A change
    that comes too soon after a settling unfreezes the heap (collected as usual again).
    """
    global _next_settle  # noqa: PLW0603 - one heap per process
    started = time.monotonic() if now is None else now
    if started < _next_settle:
        # Not frozen any more, so what the policies just replaced left in cycles is
        # collected as usual rather than kept until a settling that may never come.
        gc.unfreeze()
        return False
    cpu = time.thread_time()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _next_settle = started + SETTLE_SPACING * (time.thread_time() - cpu)
    return True


async def _resolved(future: Future[Evaluation], timeout: float) -> bool:
    """Whether `future` is done within `timeout` seconds, awaited without a thread (the
    scheduler's worker resolves it from its own). Never cancelled here: the evaluation goes
    on after a timeout, and its decision is recorded."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def wake(_future: Future[Evaluation]) -> None:
        # A closed loop (the server stopped) has nobody waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(done.set)

    future.add_done_callback(wake)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        return future.done()
    return True


def _evaluation_out(evaluation: Evaluation, *, preview: bool) -> EvaluationOut:
    return EvaluationOut(
        policy=evaluation.decision.policy,
        preview=preview,
        scaled=evaluation.scaled,
        error=evaluation.error,
        error_kind=evaluation.error_kind,
        duration_seconds=evaluation.duration,
        decision=DecisionOut.of(evaluation.decision),
    )


def _carry_memory(
    state: StateStore, before: list[Policy], after: list[Policy], *, added: Sequence[str]
) -> list[tuple[Policy, Policy]]:
    """Give each enabled policy `added` by a reload the memory of the enabled policy that
    was on its target before and is gone now (renamed, or replaced by another on the
    target: a template's new name, Nomad's policy taking over a group); return the pairs
    (old, new).

    The last action is kept by target, but the stabilization windows' recommendations and
    the missing-data count are kept by policy name: without this, a renamed policy had no
    down window behind it and could scale in at once. It goes on as an edited one would.
    Done before the new policy is scheduled, for what reads its state meanwhile, and again
    before its first run (`Controller._evaluate`): the scheduler starts it only once the
    old policy's run in flight has ended, whose result is then carried too. A replica that
    may not write keeps nothing."""
    if not added:
        return []
    names = {policy.name for policy in after}
    # By identity (region aside, as `same_target` compares): a region given on one side
    # only (a file's policy, a template's expansion with NOMAD_REGION) is one target still;
    # one name in two regions is two targets (a list per identity).
    gone: dict[tuple[str, ...], list[Policy]] = {}
    for p in before:
        if p.enabled and p.name not in names:
            gone.setdefault(p.target.identity, []).append(p)
    if not gone:
        return []
    new = set(added)  # (a tuple: `in` on it was quadratic at 10,000 renamed at once)
    carried: list[tuple[Policy, Policy]] = []
    for policy in after:
        candidates = gone.get(policy.target.identity) if policy.enabled else None
        if not candidates:
            continue
        old = next((p for p in candidates if same_target(p.target, policy.target)), None)
        if old is None:
            continue
        candidates.remove(old)
        if policy.name not in new:
            continue
        if not _copy_memory(state, old, policy):
            return carried  # a standby: the leader carries it over
        carried.append((old, policy))
    return carried


def _copy_memory(state: StateStore, old: Policy, policy: Policy) -> bool:
    """`old`'s memory as `policy`'s; False on a replica that may not write."""
    try:
        memory = state.load(old.name, old.target.key)
        state.remember(policy.name, policy.target.key, memory)
    except NotLeader:
        return False  # the database holds it, and the leader carries it over
    except StateError as exc:
        log.warning(
            "policy %s took over %s from %s without its memory (stabilization, missing data): %s",
            policy.name,
            policy.target,
            old.name,
            exc,
        )
    return True
