"""What the controller knows in memory, in front of the durable state: a failed write
never makes it forget.

Without this layer, a cooldown that could not be written (database locked, read-only, on a
full disk) was simply gone: the next evaluation read the older database and scaled again
inside the cooldown (2 -> 6, then 9). Here every save lands in memory first, and memory
wins over the database for every policy this process has seen. What could not be written
stays pending (memory per policy, decisions in a bounded queue) and is written as soon as
the database takes writes again, or when a new file appears at the path (`generation`).

`save` still raises `StateError` when the write did not become durable, so the reconciler
can hold a scale-in (capacity is only removed with a record) and say why. While the
database fails, a real write is attempted at most once per `retry_after` seconds; the
calls in between fail at once with the last error instead of each waiting on a lock.

With several replicas on one database (`run --ha`), only the leader acts. `standby()`
stops writing and makes every read go to the database (another replica is the one that
knows); `lead(epoch)` acts again, and drops what memory holds first unless it is the same
epoch this store last acted under: after a takeover the database, not memory, is newest.

Group commit: `remember` (what every evaluation keeps: recommendations, streaks) only
marks the memory as not yet written; `record` (the evaluation's decision) writes it with
everything else pending and returns once it is durable, or raises `StateError`. Writers
that arrive while a write is under way wait for it and are then written together, in one
transaction when the durable store has `write(memories, decisions)`: under load, one
commit serves many evaluations, and none is reported recorded before it is. A `record` of
a decision (same policy and time) that is still pending replaces it, so the reconciler
can add to a decision that failed its write why it is not durable; once written, the
history keeps the written version.

Lingering (`linger` seconds, the service's store): a decision that calls no scale API
(`none`, `hold`, or any dry-run one) does not wait for its write. It is written, with the
memory its evaluation kept, by the next write: a background write at most `linger` later,
or any scale's, which waits as always. At 10,000 targets every 10 s that is a commit a
second instead of hundreds. What it costs: a crash (SIGKILL, power) loses at most the
last `linger` of such decisions and memory, as if it had come that much earlier; a
scaling action is never among them (`save` waits before the scale call is made). A
write that fails while it carries such decisions keeps them (written later, as any failed
write's) and marks them: each says in its reasons that it is not durable, in the history
and in `unrecorded(policy)`, for what showed it as it was reported (the API's last
decision). While writes fail, or when half the queue is waiting, decisions wait again
(and so say when they are not durable). `run --once` does not linger: its exit code
says whether its decisions were recorded.

The queue of unwritten decisions is bounded (`max_pending`): beyond it the oldest that
scaled nothing (then the oldest actions) are dropped from the history (never a cooldown:
memory is not in the queue), counted in `dropped`, logged at the first drop and again,
with their number, once writes succeed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import datetime
from typing import Protocol, cast

from autoscaler.adapters.state.memory import MemoryStateStore
from autoscaler.adapters.state.schema import Dropped
from autoscaler.core.model import Decision, Memory
from autoscaler.core.names import counted, noun
from autoscaler.core.ports import StateStore
from autoscaler.errors import NotLeader, StateError
from autoscaler.redact import scrub

_LOG = logging.getLogger(__name__)
# What a state that takes no writes means for the decisions (the log says it once, and
# `/readyz` while it lasts).
WHILE_NOT_DURABLE = (
    "decisions are kept in memory until they can be recorded, and scaling is held "
    "meanwhile (scale-in only, with --scale-up-unrecorded)"
)


class DurableStore(StateStore, Protocol):
    """A `StateStore` that says when it switched to a new file (and so lost what it had)."""

    @property
    def generation(self) -> int: ...


# A durable store's optional `write(memories, decisions)`: all of them in one transaction,
# durable, or `StateError` and none of them (SQLite has it; a store without it gets one
# `save` or `record` call per item).
_Write = Callable[[list[tuple[str, str, Memory]], list[Decision]], None]


class LayeredStateStore:
    """`ports.StateStore`: memory in front of `durable`, which gets every write eventually."""

    def __init__(
        self,
        durable: DurableStore,
        *,
        retry_after: float = 1.0,
        max_pending: int = 1000,
        linger: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._durable = durable
        self._retry_after = retry_after
        self._linger = linger
        self._lingering = threading.Event()  # set while a decision waits for the writer
        self._closing = threading.Event()
        self._writer: threading.Thread | None = None
        self._clock = clock
        self._memory = MemoryStateStore()
        self._known: dict[str, str] = {}  # policy -> the target key its memory is about
        self._dirty: dict[str, tuple[str, Memory]] = {}  # saved here, not yet durable
        self._pending: deque[Decision] = deque(maxlen=max(1, max_pending))
        # policy -> the time of its latest decision (pending or written): a decision at that
        # time is a new version of it (the reconciler amends the decision it has just
        # recorded, within one evaluation, and a policy's evaluations never overlap); any
        # other is a new decision, even an older one (the clock stepped back). One time per
        # policy: keeping the last eight held 80,000 datetimes at 10,000 policies (5 MB).
        self._recorded: dict[str, datetime] = {}
        self._dropped = 0  # since writes last succeeded (logged then)
        self._dropped_total = 0
        # Decisions reported before their write (they lingered), until written; and per
        # policy, such a decision as marked once a write of it failed (see `unrecorded`).
        self._lingered: set[tuple[str, datetime]] = set()
        self._unrecorded: dict[str, Decision] = {}
        self._generation = durable.generation
        self._problem: str | None = None
        self._retry_at = 0.0
        self._acting = True  # False on a standby: reads go to the database, writes refused
        self._epoch: int | None = None  # the lease epoch memory belongs to (HA only)
        # Group commit: every change is numbered (`_seq`); `_written` is the number up to
        # which all is durable, `_era` counts the times `lead()` dropped what was pending.
        self._seq = 0
        self._written = 0
        self._era = 0
        # Per thread, the last load: (policy, the era its memory was loaded in), until
        # its decision is recorded. What an evaluation that loaded under an earlier era
        # keeps or records is refused, even if the lease check before the write passed
        # just before a takeover and `lead()` of a new epoch. Per thread, since an
        # evaluation loads and writes on its own thread, and readers on others (the API
        # showing a policy's cooldown, a preview) load too: their loads must not vouch for
        # it. One load per thread (an evaluation loads one policy): a reader's thread that
        # loads thousands keeps one entry, not one per policy for the process's life.
        self._loads = threading.local()
        self._lock = threading.Lock()  # the in-memory state; held only briefly
        self._writing = threading.Lock()  # writes to `durable`, which may wait on a lock
        self._batch = cast("_Write | None", getattr(durable, "write", None))

    # --- leadership (HA) ----------------------------------------------------------------------

    def lead(self, epoch: int) -> None:
        """Act under lease `epoch`. Memory of an earlier epoch is dropped (another leader may
        have acted since); memory of this same epoch is kept and written out."""
        with self._writing, self._lock:
            if epoch != self._epoch:
                if self._dirty or self._pending:
                    _LOG.warning(
                        "state: dropping the memory of %s and %s that were not written "
                        "before this replica lost lease epoch %s; the database holds what "
                        "the leaders since then did",
                        counted(len(self._dirty), "policy", "policies"),
                        counted(len(self._pending), "decision"),
                        self._epoch,
                    )
                self._memory = MemoryStateStore()
                self._known.clear()
                self._dirty.clear()
                self._pending.clear()
                self._recorded.clear()
                self._lingered.clear()
                self._unrecorded.clear()
                self._era += 1  # a writer still waiting for what was dropped must hear it
                self._problem = None
                self._retry_at = 0.0
            self._epoch = epoch
            self._acting = True

    def standby(self) -> None:
        """Write nothing and read from the database, until `lead()`."""
        with self._lock:
            self._acting = False

    @property
    def acting(self) -> bool:
        return self._acting

    @property
    def dropped(self) -> int:
        """Decisions dropped from the history unwritten since the start (the queue of
        unwritten decisions was full while the database took no writes)."""
        return self._dropped_total

    def unrecorded(self, policy: str) -> Decision | None:
        """`policy`'s decision that was reported before its write (it lingered) and whose
        write then failed, as kept: its reasons say it is not durable. None when there is
        none (its write succeeded, or it waited for its write and said so itself)."""
        with self._lock:
            return self._unrecorded.get(policy)

    def flush(self) -> None:
        """Write everything pending now; `StateError` when it cannot be (or not leading)."""
        if not self._acting:
            raise NotLeader("this replica is a standby: it writes nothing")
        with self._writing:
            self._write_out()

    # --- removed policies ---------------------------------------------------------------------

    def retain(self, policies: Collection[str], targets: Collection[str]) -> None:
        """Forget what memory holds of the policies not in `policies` (removed) and of the
        targets no longer scaled, except what is not written yet: the database has the
        rest, and a policy that comes back loads its cooldown and windows from there. A
        removed policy's evaluation still in flight loads from the database as a new one."""
        with self._lock:
            keep = set(policies).union(self._dirty, (d.policy for d in self._pending))
            unwritten = {key for key, _ in self._dirty.values()}
            self._memory.retain(keep, unwritten.union(targets))
            self._known = {p: key for p, key in self._known.items() if p in keep}
            self._recorded = {p: at for p, at in self._recorded.items() if p in keep}
            self._unrecorded = {p: d for p, d in self._unrecorded.items() if p in keep}

    def sizes(self) -> tuple[int, int, int]:
        """Policies known, targets' last actions and decision times kept in memory."""
        with self._lock:
            return len(self._known), self._memory.targets_kept(), len(self._recorded)

    def drop_removed(
        self, policies: Collection[str], targets: Collection[str], *, before: datetime
    ) -> Dropped | None:
        """The durable store's `drop_removed` (see `service.retention`); None when it has
        none, or on a standby (the leader tidies the shared database)."""
        drop = getattr(self._durable, "drop_removed", None)
        if drop is None or not self._acting:
            return None
        with self._writing:
            dropped: Dropped = drop(policies, targets, before=before)
        return dropped

    # --- StateStore ---------------------------------------------------------------------------

    def load(self, policy: str, target_key: str) -> Memory:
        """What memory holds for `policy`; the database only for a policy not seen yet
        (and always on a standby, which memory may not know about)."""
        with self._lock:
            self._loads.last = (policy, self._era)
        if not self._acting:
            return self._durable.load(policy, target_key)
        with self._lock:
            if self._known.get(policy) == target_key:
                return self._memory.load(policy, target_key)
        stored = self._durable.load(policy, target_key)
        with self._lock:
            if self._known.get(policy) != target_key:
                # Merged: a later last action that memory knows for the target is kept.
                self._memory.save(policy, target_key, stored)
                self._known[policy] = target_key
            return self._memory.load(policy, target_key)

    def save(self, policy: str, target_key: str, memory: Memory) -> None:
        """Remember `memory`, then make it durable; `StateError` if it is not (yet)."""
        self._flush(self._keep(policy, target_key, memory))

    def remember(self, policy: str, target_key: str, memory: Memory) -> None:
        """Remember `memory`; it is written with the next write (the `record` of the same
        evaluation's decision, or any other). Raises only `NotLeader`: a standby keeps
        nothing."""
        self._keep(policy, target_key, memory)

    def withdraw(self, target_key: str, *, at: datetime, previous: datetime | None) -> None:
        """Forget a last action at `at` that did not happen, here and (if it got there) in
        the database. If the database cannot take it, it keeps a cooldown that only delays."""
        with self._lock:
            self._memory.withdraw(target_key, at=at, previous=previous)
            for policy, (key, memory) in list(self._dirty.items()):
                if key == target_key and memory.last_scaled_at == at:
                    self._dirty[policy] = (key, replace(memory, last_scaled_at=previous))
        if self._problem is not None or not self._acting:
            return  # the write of `at` failed (or was refused), so the database never had it
        try:
            with self._writing:
                self._durable.withdraw(target_key, at=at, previous=previous)
        except StateError as exc:
            _LOG.warning(
                "could not withdraw the scaling action at %s on %s: %s", at, target_key, exc
            )

    def record(self, decision: Decision) -> None:
        """Add `decision` to the history, with everything pending; return once it is
        durable, else raise `StateError` (it stays pending, and is written as soon as the
        database takes writes). A decision of the same policy and time as one recorded
        before is a new version of it: it replaces the pending one, or is dropped when
        that one is written already (the history keeps what it holds)."""
        first_drop = False
        with self._lock:
            self._same_era(self._loaded_era(decision.policy, forget=True), "recorded")
            if self._recorded.get(decision.policy) == decision.time:
                if not self._replace_pending(decision):
                    return  # written already (or dropped by a takeover, which said so)
            else:
                first_drop = len(self._pending) == self._pending.maxlen and self._drop_oldest()
                self._pending.append(decision)
                self._recorded[decision.policy] = decision.time
                self._unrecorded.pop(decision.policy, None)  # a newer one is shown now
            self._seq += 1
            mine = (self._era, self._seq)
            lingers = (
                self._linger > 0
                and self._acting
                and self._problem is None
                and (not decision.changes_target or decision.dry_run)
                and 2 * len(self._pending) < (self._pending.maxlen or 0)
                and not self._closing.is_set()
            )
            if lingers:
                self._lingered.add((decision.policy, decision.time))
        if first_drop:
            _LOG.warning(
                "state database: %d decisions wait to be written, as many as are kept; the "
                "oldest that scaled nothing are dropped from the history until it takes writes "
                "again (counted in "
                "autoscaler_state_decisions_dropped_total)",
                self._pending.maxlen,
            )
        if lingers:
            self._linger_write()
            return
        self._flush(mine)

    def history(self, *, policy: str | None = None, limit: int = 100) -> list[Decision]:
        """Recorded decisions, newest first, including those not written yet."""
        if not self._acting:
            return self._durable.history(policy=policy, limit=limit)
        with self._lock:
            pending = [d for d in reversed(self._pending) if policy in (None, d.policy)]
        try:
            stored = self._durable.history(policy=policy, limit=limit)
        except StateError:
            if not pending:
                raise
            stored = []
        if pending:
            keys = {(d.policy, d.time) for d in pending}
            stored = [d for d in stored if (d.policy, d.time) not in keys]  # written meanwhile
        return (pending + stored)[: max(0, limit)]

    def durability_problem(self) -> str | None:
        """None while everything saved is durable; else the error that keeps it in memory.
        A standby saves nothing, so it has nothing to make durable."""
        return self._problem if self._acting else None

    def close(self) -> None:
        """Write what is pending (one last attempt), then close the database."""
        self._closing.set()
        self._lingering.set()  # wakes the writer, if it waits for work, to see it is over
        writer = self._writer
        if writer is not None:
            writer.join(timeout=max(5.0, 2 * self._linger))
        try:
            if not self._acting:
                raise NotLeader("this replica is a standby")
            with self._writing:
                self._write_out()
        except StateError as exc:
            with self._lock:
                policies, decisions = len(self._dirty), len(self._pending)
            if policies or decisions:
                _LOG.error(
                    "state database: the memory of %s and %s could not be written before "
                    "exit and are lost: %s",
                    counted(policies, "policy", "policies"),
                    counted(decisions, "decision"),
                    exc,
                )
        self._durable.close()

    # --- writing ------------------------------------------------------------------------------

    def _keep(self, policy: str, target_key: str, memory: Memory) -> tuple[int, int]:
        """`memory` in memory and marked unwritten; the (era, number) of that change."""
        if not self._acting:
            raise NotLeader("this replica is not the leader (it lost the lease, or stands by)")
        with self._lock:
            self._same_era(self._loaded_era(policy), "kept")
            self._memory.save(policy, target_key, memory)
            self._known[policy] = target_key
            self._dirty[policy] = (target_key, memory)
            self._seq += 1
            return self._era, self._seq

    def _loaded_era(self, policy: str, *, forget: bool = False) -> int:
        """The era this thread last loaded `policy`'s memory in (see `__init__`); the
        current era when its last load was of another policy, or none (with `self._lock`
        held). `forget`: the evaluation is over (its decision is being recorded)."""
        last: tuple[str, int] | None = getattr(self._loads, "last", None)
        if last is None or last[0] != policy:
            return self._era
        if forget:
            self._loads.last = None
        return last[1]

    def _same_era(self, loaded: int, what: str) -> None:
        """Raise `NotLeader` when memory was loaded in an earlier era (with `self._lock`
        held): the lease was lost and taken again (a new epoch) since, so what was decided
        on it is `what` no more: another leader may have acted in between."""
        if loaded != self._era:
            raise NotLeader(
                f"not {what}: this replica lost the lease while the evaluation ran and has "
                "taken it again under a new epoch; what it decided before is not written"
            )

    def _drop_oldest(self) -> bool:
        """Drop the oldest unwritten decision that scaled nothing, or else the oldest, to
        make room (with `self._lock` held): the history keeps the actions, what is most
        asked about after an outage. True when it is the first dropped since writes last
        succeeded (to be logged)."""
        pending = self._pending
        at = next((i for i, d in enumerate(pending) if not d.changes_target or d.dry_run), 0)
        oldest = pending[at]
        del pending[at]
        shown = self._leaving(oldest)
        if shown is not None:  # it will never be recorded now
            dropped = (
                "state not durable: dropped from the history unwritten (more than "
                f"{pending.maxlen:,} decisions waited for the state database)"
            )
            self._unrecorded[oldest.policy] = replace(shown, reasons=(*shown.reasons[:-1], dropped))
        self._dropped += 1
        self._dropped_total += 1
        return self._dropped == 1

    def _replace_pending(self, decision: Decision) -> bool:
        """Put `decision` in place of its pending version (with `self._lock` held)."""
        for i, found in enumerate(self._pending):
            if found.policy == decision.policy and found.time == decision.time:
                self._pending[i] = decision
                return True
        return False

    def _flush(self, mine: tuple[int, int]) -> None:
        """Return once change `mine` is durable, written by this call or by a write that
        was under way when it came (group commit); else raise `StateError` saying why."""
        era, seq = mine
        if not self._acting:
            raise NotLeader("this replica is a standby: it writes nothing")
        if self._problem is None:
            self._writing.acquire()
        elif not self._writing.acquire(blocking=False):
            raise StateError(self._problem)  # someone is trying right now
        try:
            if era != self._era:
                raise NotLeader(
                    "not written: this replica lost the lease meanwhile, and what it had not "
                    "written was dropped (the database holds what the leaders since did)"
                )
            if self._written >= seq:
                return  # the write this call waited for took it along
            if not self._acting:
                raise NotLeader("this replica is a standby: it writes nothing")
            # Checked again with the lock held: the write we waited for may just have failed.
            problem = self._problem
            if problem is not None and self._clock() < self._retry_at:
                raise StateError(problem)
            try:
                self._write_out()
            except NotLeader as exc:  # the database's fence: what is pending stays so
                exc.queued = True
                raise
        finally:
            self._writing.release()

    def _linger_write(self) -> None:
        """Have the background writer write what is pending within `linger` seconds."""
        self._lingering.set()
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_lingering, name="state-writer", daemon=True
                    )
                    self._writer.start()

    def _write_lingering(self) -> None:
        """The background writer: waits for a lingering decision, gives others `linger`
        seconds to join it, then writes them all (and any memory kept) in one go. A failed
        write is reported by `_failed` and by `durability_problem()`: the next decisions
        then wait for their writes, and say why they are not durable. (Those it was
        writing have been reported already: they stay kept, and are written later, without
        a reason of their own saying it.) It stops once `close` began, which writes what is
        left, and never writes after that."""
        while not self._closing.is_set():
            self._lingering.wait()
            if self._closing.wait(self._linger):
                return
            self._lingering.clear()
            with self._writing:
                if self._closing.is_set():
                    return
                if not self._acting:
                    continue  # a standby writes nothing; `lead` decides what is kept
                if self._problem is not None and self._clock() < self._retry_at:
                    continue
                try:
                    self._write_out()
                except StateError:
                    pass  # `_failed` reported it; `durability_problem()` says it
                except Exception as exc:  # never let the writer die: decisions would wait
                    _LOG.exception("state database: the background write failed")
                    self._failed(StateError(f"state database: the write failed: {exc}"))

    def _write_out(self) -> None:
        """Everything dirty and pending into the database (with `self._writing` held)."""
        while True:
            with self._lock:
                dirty = list(self._dirty.items())
                pending = list(self._pending)
                upto = self._seq
            try:
                if self._batch is not None:
                    self._write_batch(self._batch, dirty, pending)
                else:
                    self._write_each(dirty, pending)
            except StateError as exc:
                self._failed(exc)
                raise
            if self._durable.generation == self._generation:
                break
            # A new file at the path holds nothing of ours: write back all we remember.
            self._generation = self._durable.generation
            with self._lock:
                self._dirty = {p: (k, m) for p, k, m in self._memory.known()}
            _LOG.warning(
                "state database: writing back the memory of %s",
                counted(len(self._dirty), "policy", "policies"),
            )
        self._written = max(self._written, upto)
        self._succeeded()

    def _write_batch(
        self,
        batch: _Write,
        dirty: list[tuple[str, tuple[str, Memory]]],
        pending: list[Decision],
    ) -> None:
        """`dirty` and `pending` in one transaction; then forgotten, unless changed since."""
        batch([(policy, key, memory) for policy, (key, memory) in dirty], pending)
        with self._lock:
            for policy, entry in dirty:
                if self._dirty.get(policy) is entry:
                    del self._dirty[policy]
            self._written_out({(d.policy, d.time) for d in pending})

    def _write_each(
        self, dirty: list[tuple[str, tuple[str, Memory]]], pending: list[Decision]
    ) -> None:
        """`dirty` and `pending` one write each (a store without `write`)."""
        for policy, entry in dirty:
            self._durable.save(policy, *entry)
            with self._lock:
                if self._dirty.get(policy) is entry:
                    del self._dirty[policy]
        for decision in pending:
            self._durable.record(decision)
            with self._lock:
                self._written_out({(decision.policy, decision.time)})

    def _written_out(self, keys: set[tuple[str, datetime]]) -> None:
        """Drop the written decisions from the front of the queue (with `self._lock` held);
        by policy and time, since a new version may have replaced one while it was written."""
        while self._pending and (self._pending[0].policy, self._pending[0].time) in keys:
            written = self._pending.popleft()
            if self._leaving(written) is not None:
                del self._unrecorded[written.policy]

    def _leaving(self, decision: Decision) -> Decision | None:
        """`decision` leaves the queue, written or dropped (with `self._lock` held): it
        lingers no more. The version of it that `unrecorded` shows, if it is the decision
        shown there (for the caller to forget or amend); else None."""
        self._lingered.discard((decision.policy, decision.time))
        shown = self._unrecorded.get(decision.policy)
        return shown if shown is not None and shown.time == decision.time else None

    def _failed(self, exc: StateError) -> None:
        self._retry_at = self._clock() + self._retry_after
        if self._problem is None and isinstance(exc, NotLeader):
            # The database's fence, not an outage: the lease lapsed under this write.
            _LOG.warning(
                "state database: this replica's lease is no longer current (%s): what waits "
                "to be written is written if it leads again under the same lease, and "
                "dropped if another replica takes over",
                exc,
            )
        elif self._problem is None:
            _LOG.error(
                "state database cannot be written: %s; %s",
                exc,
                WHILE_NOT_DURABLE,
            )
        self._problem = str(exc)
        self._mark_unrecorded()

    def _mark_unrecorded(self) -> None:
        """Say in each decision reported before its write that the write failed (the
        `_problem`): it is shown (history, API) as what it is, and written so once writes
        succeed."""
        with self._lock:
            if not self._lingered:
                return
            note = scrub(
                f"state not durable ({self._problem}): the write after this decision was reported "
                "failed; it is kept in memory only until it can be recorded"
            )
            for i, found in enumerate(self._pending):
                if (found.policy, found.time) in self._lingered:
                    marked = replace(found, reasons=(*found.reasons, note))
                    self._pending[i] = marked
                    self._unrecorded[found.policy] = marked
            self._lingered.clear()

    def _succeeded(self) -> None:
        if self._problem is not None:
            _LOG.warning("state database takes writes again; what was kept in memory is written")
        if self._dropped:
            _LOG.warning(
                "state database: %d %s dropped from the history while it could not be "
                "written (queue full)",
                self._dropped,
                noun(self._dropped, "decision was", "decisions were"),
            )
            self._dropped = 0
        self._problem = None
