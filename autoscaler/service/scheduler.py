"""When each policy is evaluated: its own interval with jitter, on a bounded worker pool.

Life cycle of one policy:

    idle --(due, or triggered)--> running --(done)--> idle, next due = now + interval ± jitter
                  ^                  |
                  |     triggered while running: run again as soon as it ends
                  +------------------+

A policy is never evaluated twice at once (no overlap with itself), and because each one
takes a worker from a pool only while it runs, a slow policy delays nobody but itself
(as long as fewer than `workers` policies are slow at the same moment). A trigger hands
back a future, so the HTTP API can wait for the evaluation it asked for.

Triggered runs (an alert, the API) jump the queue: when the loop is saturated, many
scheduled runs are overdue at once, and a trigger due "now" would otherwise wait behind
all of them (52 s at 10,000 policies). The queue is ordered by (urgency, due time), so a
triggered run takes the next free worker, after only the evaluations already in flight.
Not twice in a row: after a run that jumped, the policy's next fresh run is due at once
but in turn (by due time), so a storm of notifications cannot starve the others. Nor more
often than every `TRIGGER_GAP`: triggers that come sooner after a run for a trigger
started are answered together by one run then (each would read what the last read, and
write one more decision: a storm evaluated its policy back to back, and its decisions
pushed every other policy's out of the history).

A policy removed while it runs (disabled, or its file deleted) is *draining* until that
run ends; re-added meanwhile, it takes its draining slot back and runs again as soon as
the old run ends, so even a quick `enabled: true -> false -> true` never overlaps. Nor
does a policy with another policy's run on its target in flight (a rename, a template's
policy taking over from Nomad's): it is *blocked*, and due once that run has ended, so
two evaluations never scale one target at once.

An evaluation that raises (a bug, not an unreachable dependency) is reported as a
synthetic `hold` decision with `error_kind="crash"`, so the API never shows stale state.

`gate` (HA): while it answers False (this replica is a standby), nothing is dispatched;
due policies wait and run as soon as it opens (`wake()` says when).

Policies expanded from one template share a grouped query; they are due together, on
ticks of their interval (`next_tick`, without jitter; each template has its own phase),
and each run reads data no older than its tick (`fresh_since`), so one answer serves them
all in each tick instead of one per drifting policy, and no tick reuses an earlier one's.

Such runs go through a *lane* of their own, which one worker at a time takes from:
their data is already here (the tick's one answer, the targets' watched or batched
status), so they are pure Python, and several workers running them at once only fight
over the interpreter lock and the locks it makes them queue on (at 10,000 templated
targets, 0.20 to 0.24 ms of CPU per evaluation with 4 workers against 0.15 ms with one).
A lane run that has taken `LANE_STUCK` (a scale call, a target read that no watch or
batch spared) no longer holds the lane: another worker goes on with it. When the lane
falls behind all the same (its oldest due run waits `lane_lag` past its time: a tick too
big for one core), any free worker helps; a triggered run never waits for the lane.
Other policies are not in it: they wait on their own queries and target reads, which is
what several workers are for.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from datetime import datetime

from autoscaler.core import decision as core
from autoscaler.core.model import Policy
from autoscaler.engine.evaluation import Evaluation, safe_error
from autoscaler.engine.histories import SCHEDULE_JITTER
from autoscaler.engine.reconciler import utcnow
from autoscaler.engine.scrubbing import scrubbed

log = logging.getLogger("autoscaler.scheduler")

# evaluate(policy, fresh_since): `fresh_since` is the monotonic time of the trigger this run
# answers (its data must be newer than that); for a scheduled run of a policy that shares
# a grouped query, the tick it runs in (one answer per tick); else None.
Evaluate = Callable[[Policy, float | None], Evaluation]
OnResult = Callable[[Policy, Evaluation | None], None]

CRASH = "crash"  # the `error_kind` of an evaluation that raised


@dataclass(slots=True)
class _Slot:
    """Scheduling state of one policy.

    Slots, and tuples for the futures (almost always none: a trigger is rare), because
    there is one per policy: with a dict and two empty lists, a slot took 280 bytes instead
    of 120 (1.6 MB more at 10,000).
    """

    policy: Policy
    next_due: float
    running: bool = False
    rerun: bool = False
    triggered_at: float | None = None  # the latest trigger not yet answered by a run
    urgent: bool = False  # queued for a trigger: ahead of every scheduled run
    jumped: bool = False  # the last run taken was urgent: the next one waits its turn
    answered_at: float = -math.inf  # when the last run answering a trigger started
    fresh_since: float | None = None  # for the run in flight
    last: Evaluation | None = None
    waiting: tuple[Future[Evaluation], ...] = ()  # for the next run
    in_run: tuple[Future[Evaluation], ...] = ()  # for the current run
    in_flight: Policy | None = None  # the version the run in flight evaluates
    blocked: bool = False  # queued once another policy's run on its target has ended


@dataclass(frozen=True, kw_only=True)
class SlotView:
    """What the API shows of a policy's schedule; `next_in` is seconds from now."""

    running: bool
    next_in: float | None
    last: Evaluation | None


# Seconds between the starts of two runs of a policy for triggers, at least: notifications
# that come sooner (a storm) are answered by one run then, with data read after them all.
TRIGGER_GAP = 5.0
# How long the lane's oldest due run may wait past its time before any free worker helps:
# half the policy's interval, at most this.
LANE_MAX_LAG = 5.0
# A lane run in flight this long (s) holds the lane no more: most take well under 1 ms.
LANE_STUCK = 1.0


def lane_lag(policy: Policy) -> float:
    """How late a run in the lane may be before other workers help (see the module)."""
    return min(policy.interval.total_seconds() / 2, LANE_MAX_LAG)


def shares_grouped_query(policy: Policy) -> bool:
    """Whether `policy` reads a grouped query (`group_by`) that other policies share."""
    return any(check.select for check in policy.checks)


def next_tick(policy: Policy, now: float) -> float:
    """The next tick of `policy`'s template, at least a quarter interval after `now`.

    Ticks are `phase + k * interval` on the scheduler's clock; the phase comes from where
    the template is defined, so every policy expanded from it falls due at the same
    instants, and different templates spread over the interval.
    """
    interval = policy.interval.total_seconds()
    where = f"{policy.source.file}:{policy.source.line}".encode()
    phase = (zlib.crc32(where) % 10_000) / 10_000 * interval
    tick = phase + (math.floor((now - phase) / interval) + 1) * interval
    return tick + interval if tick - now < interval / 4 else tick


class Scheduler:
    """Runs each policy on its own interval (with jitter) on a bounded worker pool."""

    def __init__(
        self,
        evaluate: Evaluate,
        *,
        workers: int = 4,
        jitter: float = SCHEDULE_JITTER,
        on_result: OnResult | None = None,
        dry_run: bool = False,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        self._evaluate_policy = evaluate
        self._gate = gate
        self._workers = max(1, workers)
        self._jitter = jitter
        self._on_result = on_result
        self._dry_run = dry_run  # only for the decision reported when an evaluation crashes
        self._clock = clock  # wall time, for the decision reported when an evaluation crashes
        self._monotonic = monotonic  # scheduling time; tests pass a fake one and never sleep
        self._rng = rng or random.Random()
        self._slots: dict[str, _Slot] = {}
        # Removed while running: kept until that run ends, so a re-add cannot overlap it.
        self._draining: dict[str, _Slot] = {}
        # (rank, due, seq, name): rank 0 for triggered runs, 1 for scheduled ones; the
        # policies that share a grouped query are queued in the lane instead.
        self._heap: list[tuple[int, float, int, str]] = []
        self._lane: list[tuple[int, float, int, str]] = []
        self._lane_runs: dict[int, float] = {}  # id(slot) -> when taken, runs from the lane
        # By target identity, region aside, as `policy.conflicts.same_target` compares (a
        # region given on one side only is one target; two regions' namesakes only wait):
        self._busy: dict[tuple[str, ...], int] = {}  # -> runs in flight on it
        # -> the slots blocked until the runs in flight on it have ended
        self._blocked: dict[tuple[str, ...], list[tuple[str, _Slot]]] = {}
        self._seq = 0
        self._cond = threading.Condition()
        self._stopping = threading.Event()

    # --- what callers change -------------------------------------------------------------

    def set_policies(self, policies: Sequence[Policy]) -> None:
        """Replace the scheduled set (enabled policies only).

        Unchanged policies keep their timing; new or changed ones are due at once. A
        policy removed while it runs drains: it is re-added only after that run ends.
        """
        with self._cond:
            wanted = {p.name: p for p in policies if p.enabled}
            for name in [n for n in self._slots if n not in wanted]:
                removed = self._slots.pop(name)
                for future in removed.waiting:
                    future.cancel()
                removed.waiting, removed.rerun, removed.triggered_at = (), False, None
                if removed.running:
                    self._draining[name] = removed
            now = self._monotonic()
            for name, policy in wanted.items():
                found = self._slots.get(name)
                draining = self._draining.pop(name, None) if found is None else None
                if draining is not None:
                    # Back before its last run ended: run again (as new) once that one ends.
                    draining.policy = policy
                    draining.rerun = True
                    self._slots[name] = draining
                elif found is None:
                    self._slots[name] = slot = _Slot(policy=policy, next_due=now)
                    self._queue(slot, name)
                elif found.policy != policy:
                    found.policy = policy
                    self._due_now(found, name)
            self._compact()
            self._cond.notify_all()

    def _compact(self) -> None:
        """Drop the stale entries of the queues once they are most of them (with the lock
        held). A removed or rescheduled policy leaves its old entry behind, dropped only
        when it reaches the top: on a standby nothing is taken, and discovery churning
        targets grew the queues without end."""
        live = len(self._slots)
        for heap in (self._heap, self._lane):
            if len(heap) > 2 * live + 64:
                heap[:] = [entry for entry in heap if self._is_live(entry)]
                heapq.heapify(heap)

    def _is_live(self, entry: tuple[int, float, int, str]) -> bool:
        """Whether `entry` is the one its policy's slot waits on (as `_top` judges it)."""
        rank, due, _, name = entry
        return _awaited(rank, due, self._slots.get(name))

    def queued(self) -> int:
        """Entries in the queues, stale ones included (for tests and diagnostics)."""
        with self._cond:
            return len(self._heap) + len(self._lane)

    def trigger(self, name: str) -> Future[Evaluation] | None:
        """Evaluate `name` as soon as possible; None when it is not scheduled.

        The future resolves with the first evaluation that *starts* after this call, so
        a trigger during a running evaluation gets a fresh one, not the one in flight.
        It jumps the queue, unless the policy's last run did: then it is due at once, in
        turn with the runs due before it, so a storm of notifications (triggers during
        and between every run) cannot keep its policies ahead of all the others.
        """
        with self._cond:  # (re-entrant: `poke` takes it too)
            if not self.poke(name):
                return None
            future: Future[Evaluation] = Future()
            slot = self._slots[name]
            slot.waiting = (*slot.waiting, future)
            return future

    def poke(self, name: str) -> bool:
        """`trigger` without an answer, for an alert: nobody waits for the run, so no
        future is kept (1.6 KB each, until the run starts: a storm of notifications naming
        thousands of policies piled them up by the megabyte). False when not scheduled."""
        with self._cond:
            slot = self._slots.get(name)
            if slot is None or self._stopping.is_set():
                return False
            self._triggered(slot, name)
            return True

    def _triggered(self, slot: _Slot, name: str) -> None:
        """Make `slot` due for a trigger (with the lock held), ahead of the queue or in
        turn (see `trigger`)."""
        now = slot.triggered_at = self._monotonic()
        if slot.running or slot.blocked:
            return  # due when its run ends or its target is free (`_answer_due`)
        earliest = slot.answered_at + TRIGGER_GAP
        if earliest > now:  # a run for a trigger started lately: the next one then, in turn
            if not slot.urgent and slot.next_due > earliest:
                slot.next_due = earliest
                self._queue(slot, name)
                self._cond.notify_all()
            return
        if slot.urgent or (slot.jumped and slot.next_due <= now):
            # Queued for a trigger already, ahead or in turn: it keeps its place (moved
            # back, it would starve; pushed again, a storm would grow the queue).
            return
        self._due_now(slot, name, urgent=not slot.jumped)
        self._cond.notify_all()

    def _answer_due(self, slot: _Slot, due: float, now: float) -> float:
        """When `slot`, with a trigger waiting, runs (at `due` at the latest), and whether
        ahead of the queue (`slot.urgent`): as soon as `TRIGGER_GAP` allows, ahead unless
        its last run jumped or it must wait for the gap."""
        due = min(due, max(now, slot.answered_at + TRIGGER_GAP))
        slot.urgent = due <= now and not slot.jumped
        return due

    def view(self, name: str) -> SlotView | None:
        with self._cond:
            slot = self._slots.get(name)
            if slot is None:
                return None
            next_in = None if slot.running else max(0.0, slot.next_due - self._monotonic())
            return SlotView(running=slot.running, next_in=next_in, last=slot.last)

    def stop(self) -> None:
        """Ask `run()` to return; evaluations in flight finish first."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()

    def wake(self) -> None:
        """Look for due policies now (the gate may have opened)."""
        with self._cond:
            self._cond.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Evaluate due policies on `workers` threads until `stop()`; then wait for the
        evaluations in flight.

        Each worker takes the next due policy itself when it is free: no dispatcher thread
        and no executor queue stand between the queue and a worker, so an evaluation costs
        no thread hand-off, and a due policy waits in our queue (where triggers and reloads
        still reach it) until a worker is free.
        """
        threads = [
            threading.Thread(target=self._work, name=f"eval-{i}", daemon=True)
            for i in range(self._workers)
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)  # a timeout keeps signal handlers running
        finally:
            self.stop()
            for thread in threads:
                thread.join()
            with self._cond:
                for slot in self._slots.values():
                    for future in slot.waiting:
                        future.cancel()
            log.info("scheduler stopped; evaluations in flight have finished")

    def _work(self) -> None:
        """One worker: run whatever is due next, until `stop()`."""
        while (due := self._next_due()) is not None:
            try:
                self._run_one(*due)
            except Exception:  # a bug in the bookkeeping: keep the worker, say so
                log.exception("scheduling policy %s failed", due[0])

    def run_due(self) -> int:
        """Evaluate, one after the other in the caller's thread, every policy due now.

        The synchronous twin of `run()`: with a fake `monotonic` clock, tests step time
        forward and call this instead of sleeping. Returns how many evaluations ran.
        """
        ran = 0
        while (due := self._pop_due()) is not None:
            self._run_one(*due)
            ran += 1
        return ran

    def _pop_due(self) -> tuple[str, _Slot] | None:
        """The first policy due now, marked running; None when none is due."""
        with self._cond:
            return self._take_due(self._monotonic())

    def _take_due(self, now: float) -> tuple[str, _Slot] | None:
        if self._gate is not None and not self._gate():
            return None
        other, laned = self._top(self._heap), self._top(self._lane)
        if laned is not None and self._lane_opens_at(laned) > now:
            laned = None
        if other is not None and (laned is None or other[0][:3] <= laned[0][:3]):
            entry, heap = other[0], self._heap
        elif laned is not None:
            entry, heap = laned[0], self._lane
        else:
            return None
        if entry[1] > now:
            return None
        heapq.heappop(heap)
        name = entry[3]
        slot = self._slots[name]
        slot.running = True
        slot.in_flight = slot.policy  # changed meanwhile, it runs again (`rerun`)
        key = slot.policy.target.identity
        self._busy[key] = self._busy.get(key, 0) + 1
        if heap is self._lane:
            self._lane_runs[id(slot)] = now
        slot.jumped, slot.urgent = slot.urgent, False
        if slot.triggered_at is not None:
            slot.answered_at = now
        slot.fresh_since, slot.triggered_at = slot.triggered_at, None
        if slot.fresh_since is None and shares_grouped_query(slot.policy):
            slot.fresh_since = entry[1]  # its tick: no answer from an earlier tick
        # A future marked running can no longer be cancelled under our feet.
        waiting, slot.waiting = slot.waiting, ()
        slot.in_run = tuple(f for f in waiting if f.set_running_or_notify_cancel())
        return name, slot

    def _top(
        self, heap: list[tuple[int, float, int, str]]
    ) -> tuple[tuple[int, float, int, str], _Slot] | None:
        """The first live entry of `heap` and its slot, dropping stale entries above it."""
        while heap:
            entry = heap[0]
            rank, due, _, name = entry
            slot = self._slots.get(name)
            if slot is None or not _awaited(rank, due, slot):
                heapq.heappop(heap)  # stale, or re-pushed when the run (or another) ends
                continue
            return entry, slot
        return None

    def _lane_opens_at(self, top: tuple[tuple[int, float, int, str], _Slot]) -> float:
        """When a worker may take the lane's first entry `top` (see the module): when due
        if the lane is free or the run triggered; else once it is `lane_lag` late or every
        lane run in flight has taken `LANE_STUCK`, whichever comes first."""
        (rank, due, _, _), slot = top
        if not self._lane_runs or rank == 0:
            return due
        stuck = max(self._lane_runs.values()) + LANE_STUCK
        return max(due, min(due + lane_lag(slot.policy), stuck))

    def _wait_for(self, now: float) -> float:
        """Seconds until a due entry may be taken (1 when none is queued)."""
        times = []
        other, laned = self._top(self._heap), self._top(self._lane)
        if other is not None:
            times.append(other[0][1])
        if laned is not None:
            times.append(self._lane_opens_at(laned))
        return min(times) - now if times else 1.0

    def _next_due(self) -> tuple[str, _Slot] | None:
        with self._cond:
            while not self._stopping.is_set():
                now = self._monotonic()
                found = self._take_due(now)
                if found is not None:
                    return found
                timeout = self._wait_for(now)
                if self._gate is not None and not self._gate():
                    timeout = 0.5  # closed: look again now and then, or at `wake()`
                self._cond.wait(timeout=max(0.005, min(timeout, 1.0)))
            return None

    def _run_one(self, name: str, slot: _Slot) -> None:
        with self._cond:
            policy, fresh_since = slot.in_flight or slot.policy, slot.fresh_since
            removed = self._slots.get(name) is not slot  # between dispatch and now
        if removed:
            self._finish(name, slot, policy, None, CancelledError(f"{name} was removed"))
            return
        evaluation: Evaluation | None = None
        error: BaseException | None = None
        try:
            evaluation = self._evaluate_policy(policy, fresh_since)
        except Exception as exc:
            log.exception("evaluation of policy %s crashed", name)
            error = exc
        if self._on_result is not None:
            try:
                self._on_result(policy, evaluation)
            except Exception:
                log.exception("reporting the evaluation of policy %s failed", name)
        last = evaluation
        if last is None and error is not None:
            try:
                last = self._crashed(policy, error)
            except Exception:  # never leave the slot marked running
                log.exception("could not describe the crash of policy %s", name)
        self._finish(name, slot, policy, evaluation, error, last=last)

    def _crashed(self, policy: Policy, error: BaseException) -> Evaluation:
        """What the API shows after a crash: a `hold` that says so (not the stale last run)."""
        return crashed(policy, error, now=self._clock(), dry_run=self._dry_run)

    def _finish(
        self,
        name: str,
        slot: _Slot,
        policy: Policy,
        evaluation: Evaluation | None,
        error: BaseException | None,
        *,
        last: Evaluation | None = None,
    ) -> None:
        with self._cond:
            done, slot.in_run = slot.in_run, ()
            slot.running = False
            freed = policy.target.identity  # `policy` is the run's (`slot.in_flight`)
            slot.in_flight = None
            self._busy[freed] -= 1
            if not self._busy[freed]:
                del self._busy[freed]
            self._lane_runs.pop(id(slot), None)  # a run from the lane: it holds it no more
            if last is not None:
                slot.last = last
            if self._draining.get(name) is slot:
                del self._draining[name]
            if self._slots.get(name) is slot:
                # A trigger that arrived during the run keeps its place ahead of the queue,
                # unless this run jumped the queue itself or answered a trigger less than
                # `TRIGGER_GAP` ago (see `trigger`).
                now = self._monotonic()
                slot.urgent = False
                if slot.rerun:
                    slot.next_due = now
                elif shares_grouped_query(policy):
                    slot.next_due = next_tick(policy, now)
                else:
                    interval = policy.interval.total_seconds()
                    spread = interval * self._rng.uniform(-self._jitter, self._jitter)
                    slot.next_due = now + max(0.0, interval + spread)
                if slot.triggered_at is not None:  # during the run
                    slot.next_due = self._answer_due(slot, slot.next_due, now)
                slot.rerun = False
                self._queue(slot, name, urgent=slot.urgent)
            if freed not in self._busy:
                self._unblock(freed)
            # No wake-up: this worker itself goes on to the next due policy, and an earlier
            # entry than the others wait for can only be this one's rerun.
        for future in done:
            if evaluation is not None:
                future.set_result(evaluation)
            else:
                future.set_exception(error or RuntimeError("evaluation did not complete"))

    def _due_now(self, slot: _Slot, name: str, *, urgent: bool = False) -> None:
        """Queue `slot` to run now; `urgent` (a trigger) puts it ahead of scheduled runs."""
        if slot.running:
            slot.rerun = True  # picked up by _finish
            return
        if slot.blocked:
            return  # due (urgent if a trigger waits) once the run on its target has ended
        if slot.urgent and not urgent and slot.policy.target.identity not in self._busy:
            return  # already queued ahead of everyone: a reload must not demote it
        slot.next_due = self._monotonic()
        slot.urgent = urgent
        self._queue(slot, name, urgent=urgent)

    def _queue(self, slot: _Slot, name: str, *, urgent: bool = False) -> None:
        """Push `slot` (not running) for its `next_due`, or, while a run of another policy
        on its target is in flight (one removed or moved by a reload), block it until that
        run has ended (`_unblock`): two evaluations must never scale one target at once."""
        key = slot.policy.target.identity
        if key in self._busy:
            slot.blocked = True
            self._blocked.setdefault(key, []).append((name, slot))
        else:
            self._push(slot.next_due, name, urgent=urgent)

    def _unblock(self, key: tuple[str, ...]) -> None:
        """Queue the slots blocked on `key`, whose runs in flight have all ended: due at
        once if new or triggered, else at their time."""
        now = self._monotonic()
        for name, slot in self._blocked.pop(key, ()):
            if slot.blocked and self._slots.get(name) is slot:
                slot.blocked = False
                slot.urgent = False
                slot.next_due = max(slot.next_due, now)
                if slot.triggered_at is not None:
                    slot.next_due = self._answer_due(slot, slot.next_due, now)
                self._queue(slot, name, urgent=slot.urgent)
        self._cond.notify_all()

    def _push(self, due: float, name: str, *, urgent: bool = False) -> None:
        self._seq += 1
        slot = self._slots.get(name)
        heap = self._lane if slot is not None and shares_grouped_query(slot.policy) else self._heap
        heapq.heappush(heap, (_rank(urgent), due, self._seq, name))


def _awaited(rank: int, due: float, slot: _Slot | None) -> bool:
    """Whether a queue entry (`rank`, `due`) is the one `slot` waits on: not stale (the
    policy removed, rescheduled since), and the slot neither running nor blocked."""
    return not (
        slot is None
        or due != slot.next_due
        or rank != _rank(slot.urgent)
        or slot.running
        or slot.blocked
    )


def _rank(urgent: bool) -> int:
    """Heap rank: triggered runs (0) before scheduled ones (1), whatever their due times."""
    return 0 if urgent else 1


def crashed(policy: Policy, error: BaseException, *, now: datetime, dry_run: bool) -> Evaluation:
    """The evaluation of a policy whose evaluation raised unexpectedly (a bug): a `hold`
    that says so, its `error_kind` `crash`; nothing it decided is acted on."""
    reason = f"evaluation crashed: {safe_error(error)}"
    decision = core.unavailable(policy, now=now, reason=reason, dry_run=dry_run)
    return scrubbed(Evaluation(decision=decision, error=reason, error_kind=CRASH))
