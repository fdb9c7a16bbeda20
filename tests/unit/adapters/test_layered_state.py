"""The in-memory layer in front of the durable state: a failed write never makes it forget.

The durable store here is a `MemoryStateStore` that fails on demand, so each rule of the
layer is one plain test; the same rules against real SQLite faults (locked, read-only,
deleted, replaced) are in tests/integration/adapters/test_state_faults.py.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.adapters.state import LayeredStateStore, MemoryStateStore, SqliteStateStore
from autoscaler.core.model import Action, Decision, Memory, Recommendation
from autoscaler.errors import NotLeader, StateError
from tests.support.net import wait_until

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
KEY = "aws-asg/-/web"


@dataclass
class FlakyStore(MemoryStateStore):
    """A durable store whose writes fail with `broken` while it is set."""

    broken: str | None = None
    generation: int = 0
    writes: int = 0
    attempts: int = 0
    closed: bool = False
    withdrawn: list[tuple[str, datetime, datetime | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def _write(self) -> None:
        self.attempts += 1
        if self.broken is not None:
            raise StateError(f"state database s.db: {self.broken}")
        self.writes += 1

    def save(self, policy: str, target_key: str, memory: Memory) -> None:
        self._write()
        super().save(policy, target_key, memory)

    def record(self, decision: Decision) -> None:
        self._write()
        super().record(decision)

    def withdraw(self, target_key: str, *, at: datetime, previous: datetime | None) -> None:
        self._write()
        self.withdrawn.append((target_key, at, previous))
        super().withdraw(target_key, at=at, previous=previous)

    def close(self) -> None:
        self.closed = True


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def layered(durable: FlakyStore, clock: Clock | None = None) -> LayeredStateStore:
    return LayeredStateStore(durable, retry_after=1.0, clock=clock or Clock())


def decision(at: datetime, policy: str = "web") -> Decision:
    return Decision(
        policy=policy,
        target="aws-asg:web",
        time=at,
        current=2,
        desired=6,
        action=Action.UP,
        dry_run=False,
        reasons=("load: 6 → 6",),
    )


def test_a_failed_write_never_makes_it_forget_the_cooldown() -> None:
    durable = FlakyStore()
    durable.save("web", KEY, Memory(last_scaled_at=T0 - timedelta(hours=1)))  # older
    store = layered(durable)
    store.load("web", KEY)
    durable.broken = "database is locked"
    scaled = Memory(
        last_scaled_at=T0,
        recommendations=(Recommendation(at=T0, count=6),),
        missing_data_streak=0,
    )
    with pytest.raises(StateError, match="database is locked"):
        store.save("web", KEY, scaled)
    assert store.load("web", KEY) == scaled  # memory wins over the older database
    assert durable.load("web", KEY).last_scaled_at == T0 - timedelta(hours=1)


def test_a_policy_not_seen_yet_is_read_from_the_database() -> None:
    durable = FlakyStore()
    durable.save("web", KEY, Memory(last_scaled_at=T0, missing_data_streak=2))
    assert layered(durable).load("web", KEY) == Memory(last_scaled_at=T0, missing_data_streak=2)


def test_what_could_not_be_written_is_written_once_the_database_takes_writes() -> None:
    durable, clock = FlakyStore(broken="disk I/O error"), Clock()
    store = layered(durable, clock)
    with pytest.raises(StateError):
        store.save("web", KEY, Memory(last_scaled_at=T0))
    with pytest.raises(StateError):  # not durable, so never reported as recorded ...
        store.record(decision(T0))  # ... but kept, and written once it can be
    assert store.durability_problem() == "state database s.db: disk I/O error"

    durable.broken = None
    clock.now += 1.0
    store.save("api", "aws-asg/-/api", Memory(missing_data_streak=1))
    assert store.durability_problem() is None
    assert durable.load("web", KEY).last_scaled_at == T0
    assert durable.load("api", "aws-asg/-/api").missing_data_streak == 1
    assert durable.history() == [decision(T0)]


def test_while_broken_a_write_is_tried_at_most_once_per_retry_interval() -> None:
    durable, clock = FlakyStore(broken="database is locked"), Clock()
    store = layered(durable, clock)
    for _ in range(5):
        with pytest.raises(StateError, match="locked"):
            store.save("web", KEY, Memory())
    assert durable.attempts == 1  # the others failed at once with the known error
    clock.now += 1.0
    with pytest.raises(StateError):
        store.save("web", KEY, Memory())
    assert durable.attempts == 2


def test_a_new_file_at_the_path_gets_everything_remembered() -> None:
    durable = FlakyStore()
    store = layered(durable)
    store.save("web", KEY, Memory(last_scaled_at=T0))
    store.save("api", "aws-asg/-/api", Memory(missing_data_streak=3))
    # The file was deleted and recreated empty (what the SQLite store reports as a new
    # generation): the next write brings back everything, not only its own policy.
    durable.__init__()  # type: ignore[misc]
    durable.generation = 1
    store.save("web", KEY, Memory(last_scaled_at=T0))
    assert durable.load("api", "aws-asg/-/api").missing_data_streak == 3
    assert durable.load("web", KEY).last_scaled_at == T0


def test_withdraw_forgets_an_action_that_was_never_written() -> None:
    durable, clock = FlakyStore(), Clock()
    store = layered(durable, clock)
    store.save("web", KEY, Memory(last_scaled_at=T0))
    durable.broken = "database is locked"
    later = T0 + timedelta(minutes=10)
    with pytest.raises(StateError):
        store.save("web", KEY, Memory(last_scaled_at=later))  # recorded ahead of a scale-in
    store.withdraw(KEY, at=later, previous=T0)  # ... which was then held
    assert store.load("web", KEY).last_scaled_at == T0
    assert durable.withdrawn == []  # the database never had it

    durable.broken = None
    clock.now += 1.0
    store.save("api", "aws-asg/-/api", Memory())
    assert durable.load("web", KEY).last_scaled_at == T0  # the pending write lost `later`


def test_withdraw_reaches_the_database_when_the_action_was_written() -> None:
    durable = FlakyStore()
    store = layered(durable)
    store.save("web", KEY, Memory(last_scaled_at=T0))
    store.withdraw(KEY, at=T0, previous=None)
    assert durable.load("web", KEY).last_scaled_at is None
    assert store.load("web", KEY).last_scaled_at is None


def test_history_shows_decisions_not_written_yet_first() -> None:
    durable = FlakyStore()
    store = layered(durable)
    store.record(decision(T0))
    durable.broken = "database is locked"
    for late in (decision(T0 + timedelta(seconds=1)), decision(T0 + timedelta(seconds=2), "api")):
        with pytest.raises(StateError):
            store.record(late)
    assert [d.time for d in store.history(policy="web")] == [T0 + timedelta(seconds=1), T0]
    assert len(store.history(limit=2)) == 2


def test_close_writes_what_is_pending_then_closes() -> None:
    durable, clock = FlakyStore(broken="database is locked"), Clock()
    store = layered(durable, clock)
    with pytest.raises(StateError):
        store.save("web", KEY, Memory(last_scaled_at=T0))
    durable.broken = None
    store.close()  # no waiting for the retry interval: it is the last chance
    assert durable.load("web", KEY).last_scaled_at == T0
    assert durable.closed


def test_the_queue_of_unwritten_decisions_is_bounded() -> None:
    durable = FlakyStore(broken="disk I/O error")
    store = LayeredStateStore(durable, max_pending=3, clock=Clock())
    for second in range(5):
        with pytest.raises(StateError):
            store.record(decision(T0 + timedelta(seconds=second)))
    assert [d.time.second for d in store.history(limit=10)] == [4, 3, 2]


def test_a_write_that_waited_behind_a_failing_one_does_not_try_again() -> None:
    # Four evaluations saving at once against a locked database must not each wait out
    # the lock timeout in turn.
    entered, gate = threading.Event(), threading.Event()

    class SlowlyFailing(FlakyStore):
        def save(self, policy: str, target_key: str, memory: Memory) -> None:
            entered.set()
            gate.wait(5)  # as SQLite waits for a lock
            super().save(policy, target_key, memory)

    durable = SlowlyFailing(broken="database is locked")
    store = layered(durable)
    errors: list[str] = []

    def save(policy: str) -> None:
        try:
            store.save(policy, KEY, Memory())
        except StateError as exc:
            errors.append(str(exc))

    first = threading.Thread(target=save, args=("a",))
    first.start()
    assert entered.wait(5)
    second = threading.Thread(target=save, args=("b",))
    second.start()
    second.join(0.2)  # let it reach the lock the first one holds (no assertion on time)
    gate.set()
    first.join(5)
    second.join(5)
    assert len(errors) == 2
    assert durable.attempts == 1


# --- group commit ---------------------------------------------------------------------------


@dataclass
class BatchStore(FlakyStore):
    """A durable store that takes many memories and decisions in one transaction; the
    first write waits for `gate` once `entered` is set, as a commit under load would."""

    batches: list[tuple[int, int]] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event | None = None

    def write(self, memories: list[tuple[str, str, Memory]], decisions: list[Decision]) -> None:
        if self.gate is not None and not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(5)
        self._write()
        for policy, key, memory in memories:
            MemoryStateStore.save(self, policy, key, memory)
        for d in decisions:
            MemoryStateStore.record(self, d)
        self.batches.append((len(memories), len(decisions)))


def _memory(at: datetime) -> Memory:
    return Memory(recommendations=(Recommendation(at=at, count=3),))


def test_a_decision_and_its_memory_are_durable_when_record_returns() -> None:
    # A leader SIGKILLed right after an evaluation must leave its decision in the shared
    # history: the standby showed the last decision as desired 2 where the group had been
    # scaled to 4, when a committer thread wrote decisions up to 0.2 s later.
    durable = BatchStore()
    store = LayeredStateStore(durable)
    store.remember("web", KEY, _memory(T0))
    assert durable.batches == []  # nothing of its own to wait for ...
    store.record(decision(T0))
    assert durable.batches == [(1, 1)]  # ... it goes with the decision, in one transaction
    assert durable.history() == [decision(T0)]
    assert durable.load("web", KEY) == _memory(T0)


def test_evaluations_that_come_during_a_write_share_the_next_one() -> None:
    durable = BatchStore(gate=threading.Event())
    assert durable.gate is not None
    store = LayeredStateStore(durable)
    returned: list[str] = []

    def evaluate(policy: str) -> None:
        store.remember(policy, KEY, _memory(T0))
        store.record(decision(T0, policy=policy))
        returned.append(policy)

    first = threading.Thread(target=evaluate, args=("p0",))
    first.start()
    assert durable.entered.wait(5)  # p0's write is under way
    others = [threading.Thread(target=evaluate, args=(f"p{i}",)) for i in range(1, 9)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 5
    while len(store.history(limit=100)) < 9 and time.monotonic() < deadline:
        time.sleep(0.001)  # until all eight are queued behind p0's write
    assert returned == []  # nobody hears "recorded" before its write
    durable.gate.set()
    for thread in [first, *others]:
        thread.join(5)
    assert sorted(returned) == [f"p{i}" for i in range(9)]
    assert durable.batches == [(1, 1), (8, 8)]  # eight evaluations, one transaction
    assert len(durable.history(limit=100)) == 9


def test_a_decision_whose_write_failed_takes_its_new_version_until_written() -> None:
    durable, clock = BatchStore(broken="disk I/O error"), Clock()
    store = LayeredStateStore(durable, clock=clock)
    first = decision(T0)
    with pytest.raises(StateError, match="disk I/O error"):
        store.record(first)
    said = replace(first, reasons=(*first.reasons, "state not durable (disk I/O error)"))
    with pytest.raises(StateError):
        store.record(said)  # a new version of the same decision: it replaces the old one
    assert store.history() == [said]
    durable.broken = None
    clock.now += 1.0
    newest = decision(T0 + timedelta(seconds=1))
    store.record(newest)
    assert durable.history() == [newest, said]
    store.record(replace(newest, reasons=("amended",)))  # once written, the history keeps it
    assert durable.history() == [newest, said]


def test_a_write_dropped_by_a_takeover_is_never_reported_durable() -> None:
    durable = BatchStore(gate=threading.Event())
    assert durable.gate is not None
    store = LayeredStateStore(durable)
    store.lead(1)
    outcome: list[BaseException | None] = []

    def record(policy: str) -> None:
        try:
            store.record(decision(T0, policy=policy))
            outcome.append(None)
        except StateError as exc:
            outcome.append(exc)

    first = threading.Thread(target=record, args=("a",))
    first.start()
    assert durable.entered.wait(5)
    second = threading.Thread(target=record, args=("b",))
    second.start()
    deadline = time.monotonic() + 5
    while len(store.history()) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    # Meanwhile this replica lost the lease and won it back under a new epoch: what it had
    # not written (b) is dropped, since another leader may have acted since.
    store.standby()
    leading = threading.Thread(target=store.lead, args=(2,))
    leading.start()
    durable.gate.set()
    for thread in (first, second, leading):
        thread.join(5)
    assert outcome[0] is None  # a was written before
    assert isinstance(outcome[1], NotLeader)
    assert [d.policy for d in durable.history()] == ["a"]


def test_what_an_evaluation_loaded_before_a_new_epoch_it_may_not_keep_or_record() -> None:
    # The race the lease check before a write cannot close: the check passed, then the
    # lease lapsed, another leader acted, and this replica took it back (a new epoch) before
    # the write. Memory loaded before would overwrite the other leader's cooldown.
    durable = FlakyStore()
    store = layered(durable)
    store.lead(1)
    store.load("web", KEY)  # the evaluation begins under epoch 1
    store.standby()
    durable.save("web", KEY, Memory(last_scaled_at=T0 + timedelta(minutes=5)))  # the other
    store.lead(2)
    with pytest.raises(NotLeader, match="taken it again under a new epoch"):
        store.remember("web", KEY, Memory(last_scaled_at=T0))
    with pytest.raises(NotLeader, match="taken it again under a new epoch"):
        store.record(decision(T0))
    assert durable.load("web", KEY).last_scaled_at == T0 + timedelta(minutes=5)
    assert durable.history() == []
    # The next evaluation loads under epoch 2 and writes as usual; so does one that never
    # loaded (a target that could not be read records its hold).
    assert store.load("web", KEY).last_scaled_at == T0 + timedelta(minutes=5)
    store.save("web", KEY, Memory(last_scaled_at=T0 + timedelta(minutes=9)))
    store.record(decision(T0 + timedelta(minutes=9)))
    store.record(decision(T0 + timedelta(minutes=10), policy="api"))
    assert [d.policy for d in durable.history()] == ["api", "web"]
    # The same epoch back (nobody took it meanwhile) keeps what this replica knew.
    store.load("web", KEY)
    store.standby()
    store.lead(2)
    store.remember("web", KEY, Memory(last_scaled_at=T0 + timedelta(minutes=11)))


def test_a_load_by_another_thread_neither_vouches_for_nor_refuses_an_evaluation() -> None:
    # The API shows each policy's cooldown with a `load` (and a preview loads too), on its
    # own thread: that load stamped the new era and let the old evaluation's write through,
    # or, read on a standby, refused a first evaluation that never loaded.
    durable = FlakyStore()
    store = layered(durable)
    store.lead(1)
    store.load("web", KEY)  # the evaluation begins under epoch 1
    store.standby()
    store.lead(2)
    reader = threading.Thread(target=store.load, args=("web", KEY))  # GET /v1/policies
    reader.start()
    reader.join(5)
    with pytest.raises(NotLeader, match="taken it again under a new epoch"):
        store.remember("web", KEY, Memory(last_scaled_at=T0))
    # A standby's API read, then a takeover: a first evaluation that could not read its
    # target (so loaded nothing) records its hold.
    fresh = layered(FlakyStore())
    fresh.lead(1)
    fresh.standby()
    reader = threading.Thread(target=fresh.load, args=("web", KEY))
    reader.start()
    reader.join(5)
    fresh.lead(2)
    fresh.record(decision(T0))


def test_a_thread_that_loads_many_policies_keeps_one_load_in_mind() -> None:
    # The API's threads load every policy to show its cooldown and never record: a map
    # per thread of every policy it loaded grew with the policies (and churned targets).
    store = layered(FlakyStore())
    store.lead(1)
    for i in range(1000):
        store.load(f"p{i}", KEY)
    assert vars(store._loads) == {"last": ("p999", 1)}


def test_close_writes_what_is_pending() -> None:
    durable = BatchStore(broken="database is locked")
    store = LayeredStateStore(durable)
    store.remember("web", KEY, _memory(T0))
    with pytest.raises(StateError):
        store.record(decision(T0))
    durable.broken = None
    store.close()
    assert durable.batches == [(1, 1)]
    assert durable.closed


def test_a_decision_older_than_the_last_one_is_still_written_when_the_clock_went_back() -> None:
    # The wall clock stepped back (NTP): the next evaluation's decision is older than the
    # one recorded before it, yet it is a new decision, not a new version of a written one.
    # It had been taken for one: dropped, and `record` returned as if it were durable.
    durable = BatchStore()
    store = LayeredStateStore(durable)
    store.record(decision(T0))
    earlier = replace(decision(T0 - timedelta(seconds=5)), desired=4)
    store.remember("web", KEY, _memory(T0 - timedelta(seconds=5)))
    store.record(earlier)
    assert durable.history() == [earlier, decision(T0)]  # newest written first
    assert durable.load("web", KEY) == _memory(T0 - timedelta(seconds=5))


# --- lingering: decisions that scale nothing are written together, shortly after ---------


def unchanged(at: datetime, policy: str = "web") -> Decision:
    return replace(decision(at, policy), desired=2, action=Action.NONE)


def test_a_decision_that_scales_nothing_is_written_by_the_background_writer() -> None:
    durable = FlakyStore()
    store = LayeredStateStore(durable, linger=0.05)
    store.remember("web", KEY, Memory(missing_data_streak=1))
    store.record(unchanged(T0))
    store.record(unchanged(T0, "api"))
    assert [d.policy for d in store.history()] == ["api", "web"]  # shown meanwhile
    deadline = time.monotonic() + 5
    while len(durable.history()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [d.policy for d in durable.history()] == ["api", "web"]
    assert durable.load("web", KEY).missing_data_streak == 1  # the memory went with them
    store.close()


def test_a_scale_waits_for_its_write_and_takes_the_lingering_decisions_along() -> None:
    durable = FlakyStore()
    store = LayeredStateStore(durable, linger=60.0)
    store.record(unchanged(T0, "api"))
    store.record(decision(T0))  # up: returns only once written
    assert [d.policy for d in durable.history()] == ["web", "api"]
    store.close()


def test_a_dry_run_scale_lingers_as_it_calls_nothing() -> None:
    durable = FlakyStore()
    store = LayeredStateStore(durable, linger=60.0)
    store.record(replace(decision(T0), dry_run=True))
    assert durable.history() == []
    store.close()
    assert [d.policy for d in durable.history()] == ["web"]


def test_while_writes_fail_decisions_wait_again_and_say_they_are_not_durable() -> None:
    durable = FlakyStore(broken="database is locked")
    clock = Clock()
    store = LayeredStateStore(durable, linger=60.0, retry_after=1.0, clock=clock)
    with pytest.raises(StateError):
        store.save("web", KEY, Memory(last_scaled_at=T0))
    with pytest.raises(StateError, match="database is locked"):
        store.record(unchanged(T0))
    store.close()


def test_a_queue_half_full_makes_decisions_wait_for_their_write() -> None:
    durable = FlakyStore()
    store = LayeredStateStore(durable, linger=60.0, max_pending=6)
    store.record(unchanged(T0, "a"))
    store.record(unchanged(T0, "b"))
    assert durable.writes == 0
    store.record(unchanged(T0, "c"))  # three of six waiting: this one waits for the write
    assert sorted(d.policy for d in durable.history()) == ["a", "b", "c"]
    store.close()


def test_close_writes_what_lingers_without_waiting_for_the_writer() -> None:
    durable = FlakyStore()
    store = LayeredStateStore(durable, linger=60.0)
    store.record(unchanged(T0))
    started = time.monotonic()
    store.close()
    assert time.monotonic() - started < 5
    assert [d.policy for d in durable.history()] == ["web"]
    assert durable.closed


def test_a_background_write_that_fails_is_reported_and_kept() -> None:
    durable = FlakyStore(broken="disk I/O error")  # not known yet: nothing was written
    store = LayeredStateStore(durable, linger=0.05, retry_after=0.0)
    store.record(unchanged(T0))
    deadline = time.monotonic() + 5
    while store.durability_problem() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.durability_problem() == "state database s.db: disk I/O error"
    assert [d.policy for d in store.history()] == ["web"]  # still kept
    durable.broken = None
    store.close()
    assert [d.policy for d in durable.history()] == ["web"]


def test_lingering_decisions_reach_sqlite_in_one_transaction(tmp_path: Path) -> None:
    durable = SqliteStateStore(tmp_path / "state.db", exclusive=True)
    store = LayeredStateStore(durable, linger=0.05)
    store.remember("web", KEY, Memory(missing_data_streak=2))
    store.record(unchanged(T0))
    store.record(unchanged(T0, "api"))
    deadline = time.monotonic() + 10
    while len(durable.history()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [d.policy for d in durable.history()] == ["api", "web"]
    assert durable.load("web", KEY).missing_data_streak == 2
    store.close()


def test_a_lingering_decision_whose_write_failed_says_it_was_not_recorded() -> None:
    # It was reported (logged, shown by the API) before its write: once that write failed,
    # the history and `unrecorded` showed it as if recorded, though it was in memory only.
    durable = FlakyStore(broken="disk I/O error")
    store = LayeredStateStore(durable, linger=0.05, retry_after=0.0)
    store.record(unchanged(T0))  # returns at once: it lingers
    wait_until(lambda: store.durability_problem() is not None, timeout=5, what="the failed write")

    kept = store.history(policy="web", limit=1)[0]
    assert kept.reasons[-1].startswith("state not durable (state database s.db: disk I/O error)")
    assert store.unrecorded("web") == kept
    durable.broken = None
    store.flush()
    assert durable.history(policy="web")[0] == kept  # written as it is shown
    assert store.unrecorded("web") is None
    store.close()


def test_an_unrecorded_decision_dropped_from_a_full_queue_says_it_will_not_be_recorded() -> None:
    # It kept saying "kept in memory only until it can be recorded", after writes came back.
    durable = FlakyStore(broken="disk I/O error")
    store = LayeredStateStore(durable, linger=0.05, retry_after=0.0, max_pending=4)
    store.record(unchanged(T0))  # lingers; its write fails
    wait_until(lambda: store.unrecorded("web") is not None, timeout=5, what="the failed write")
    for i, name in enumerate(("a", "b", "c", "d")):  # the queue is full: "web" goes
        with pytest.raises(StateError):
            store.record(decision(T0 + timedelta(seconds=i + 1), name))
    shown = store.unrecorded("web")
    assert shown is not None and shown.time == T0
    assert shown.reasons[-1].startswith("state not durable: dropped from the history unwritten")
    durable.broken = None
    store.flush()
    assert durable.history(policy="web") == []
    store.retain({"a", "b", "c", "d"}, set())  # "web" removed: nothing kept of it
    assert store.unrecorded("web") is None
    store.close()


def test_lingering_decisions_taken_along_by_a_failed_scale_write_say_so() -> None:
    durable = FlakyStore()
    store = LayeredStateStore(durable, linger=60.0)
    store.record(unchanged(T0, "api"))  # lingers
    durable.broken = "database is locked"
    with pytest.raises(StateError):
        store.record(decision(T0))  # a scale waits for its write, which takes "api" along
    assert "state not durable" in store.history(policy="api")[0].reasons[-1]
    assert store.unrecorded("api") is not None
    assert store.unrecorded("web") is None  # its caller heard the error and says it itself
    durable.broken = None
    store.close()


def test_a_full_queue_drops_decisions_that_scaled_nothing_before_actions() -> None:
    # An outage longer than the queue: what is asked about afterwards is why it scaled.
    durable = FlakyStore(broken="database or disk is full")
    store = LayeredStateStore(durable, max_pending=3, clock=Clock())
    held = [replace(decision(T0 + timedelta(seconds=s)), action=Action.NONE) for s in (1, 3, 4)]
    for made in (decision(T0), held[0], decision(T0 + timedelta(seconds=2)), *held[1:]):
        with pytest.raises(StateError):
            store.record(made)
    durable.broken = None
    store.flush()
    kept = [(d.time.second, d.action) for d in durable.history()]
    assert kept == [(4, Action.NONE), (2, Action.UP), (0, Action.UP)]
    store.close()


def test_a_full_queue_counts_what_it_drops_and_says_so_at_the_first_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    durable = FlakyStore(broken="database or disk is full")
    store = LayeredStateStore(durable, max_pending=3, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="autoscaler.adapters.state.layered"):
        for second in range(6):
            with pytest.raises(StateError):
                store.record(decision(T0 + timedelta(seconds=second)))
        # Said at once (the database may never come back), once, not at every drop.
        assert sum("scaled nothing are dropped" in r.getMessage() for r in caplog.records) == 1
        assert store.dropped == 3
        durable.broken = None
        store.flush()
    assert [d.time.second for d in durable.history()] == [5, 4, 3]
    assert any("3 decisions were dropped" in r.getMessage() for r in caplog.records)
    assert store.dropped == 3  # a counter: it never goes back
    store.close()
