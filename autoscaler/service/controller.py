"""The running service's brain: live policies, their schedule, telemetry, and what the API sees.

`Controller` ties the registry (which policies), the scheduler (when), the reconciler
(what to do) and the side channels (metrics, notifications) together, and implements
`api.http.Backend` (its reads in `service.reads`), so the HTTP layer never touches any of
them directly. It raises the domain errors of `autoscaler.errors` (`PolicyNotFound`,
`ServiceBusy`, ...); which HTTP status each one becomes is the API's business alone. A
policy that takes over another's target gets its memory (`service.succession`); the heap
is settled after each change of the policies (`service.heap`).

With `--ha` a `Leadership` says whether this replica leads: a standby loads and validates
the policies and answers every read (from the shared database), but dispatches no
evaluation and refuses `POST .../evaluate` (`Standby`, 503 naming the leader).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from datetime import datetime
from typing import Any

from autoscaler.adapters.sources import coalesce
from autoscaler.api.lanes import Lane
from autoscaler.api.models import (
    AlertOut,
    DecisionOut,
    EvaluationOut,
    LoadError,
    ReloadOut,
)
from autoscaler.core.model import Policy
from autoscaler.core.names import name_list, noun
from autoscaler.core.ports import MetricSource, StateStore
from autoscaler.engine.evaluation import Evaluation, safe_error
from autoscaler.engine.reconciler import Reconciler, utcnow
from autoscaler.errors import (
    EvaluationCancelled,
    EvaluationFailed,
    EvaluationTimeout,
    InvalidRequest,
    PolicyDisabled,
    PolicyNotFound,
    ServiceBusy,
    ServiceError,
    ShuttingDown,
    Standby,
)
from autoscaler.service import alerts
from autoscaler.service.heap import settle_heap
from autoscaler.service.leadership import LEADER, Leadership
from autoscaler.service.notify import Notifier
from autoscaler.service.reads import BackendReads
from autoscaler.service.registry import PolicyRegistry, ReloadOutcome
from autoscaler.service.retention import Retention
from autoscaler.service.scheduler import Scheduler
from autoscaler.service.succession import carry_memory, copy_memory
from autoscaler.service.telemetry import Telemetry

log = logging.getLogger("autoscaler.service")

EVALUATE_TIMEOUT = 60.0  # seconds `POST .../evaluate` waits for its evaluation
RETRY_AFTER = 1  # seconds a client should wait when a reload is rescheduling the policy
# Previews (`?dry_run=true`) evaluate in the request, each up to 3 x --query-timeout: at
# most this many at a time, on threads of their own, and this many under way (running or
# waiting) before one more is refused with 503 and a Retry-After of so many seconds.
PREVIEW_THREADS = 4
PREVIEW_LIMIT = 16
PREVIEW_RETRY_AFTER = 5
LOGGED_POLICIES = 100  # the policies an alert triggers named in its log line, at most


class Controller(BackendReads):
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
        successor's first run (see `succession.carry_memory`)."""
        with self._heirs_lock:
            for old, policy in carried:
                self._heirs[policy.name] = old

    def _evaluate(self, policy: Policy, fresh_since: float | None) -> Evaluation:
        if self._heirs:  # a policy that took over a target: its predecessor's last run
            with self._heirs_lock:  # has ended (the scheduler waited for it); carry again
                old = self._heirs.pop(policy.name, None)
            if old is not None:
                copy_memory(self.state, old, policy)
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
        self._inherit(carry_memory(self.state, before, policies, added=outcome.added))
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
        `PREVIEW_LIMIT` under way, `ServiceBusy`: 503 with Retry-After, but for an unknown
        policy `PolicyNotFound`: a retry cannot help, so it is no busy service's answer)."""
        if preview:
            if self._previews.full:  # known, or 404 (the registry's lock may block: a lane)
                await self._requests.run(lambda: self._known(name))
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

    def _known(self, name: str) -> Policy:
        """The policy `name` (blocks through a reload); `PolicyNotFound` when there is none."""
        policy = self.registry.get(name)
        if policy is None:
            raise PolicyNotFound(name)
        return policy

    def _preview(self, name: str) -> Evaluation:
        """`name` evaluated without scaling, recording or remembering (blocks)."""
        policy = self._known(name)
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
        self.telemetry.triggered_by(name, "api")
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
        left_out = alerts.left_out(payload)
        if left_out:
            # Their names are not sent: a policy only they name is not woken, silently.
            self.telemetry.alerts_left_out.inc(left_out)
            log.warning(
                "Alertmanager left %d %s out of notification %s (max_alerts of the "
                "receiver): a policy that only they name is not evaluated early; remove "
                "max_alerts from the autoscaler's webhook_configs, or group_by alertname",
                left_out,
                noun(left_out, "alert"),
                alerts.group_key(payload),
            )
        if self.role() != LEADER:
            return AlertOut(received=len(received), triggered=[])  # the leader's copy acts
        names = alerts.policies_to_trigger(received, self.registry.policies())
        triggered = []
        for name in names:
            if self.scheduler.poke(name):  # nobody waits for these runs
                triggered.append(name)
                self.telemetry.triggered_by(name, "alert")
        if triggered:
            # Quoted and cut short: alert names are a caller's text, and a newline in one
            # would forge a log line in the text format.
            which = ", ".join(sorted({f"{a.name!r} ({a.status!r})" for a in received if a.name}))
            if len(which) > 2000:
                which = which[:2000] + "…"
            # One line however many: a template's thousands of policies made a line of
            # hundreds of kB, which log shippers split or cut (the answer lists them all).
            log.info("alerts %s trigger policies %s", which, name_list(triggered, LOGGED_POLICIES))
        return AlertOut(received=len(received), triggered=triggered)


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
