"""The PostgreSQL state store and leader lease against a real PostgreSQL server.

The store must keep exactly what the SQLite store keeps (same rules: the last action only
moves forward, a withdrawn action goes back, a policy moved to another target starts
afresh, history newest first and pruned), plus what sharing needs: its own schema with a
version table, every decision stored once, and no write from a replica whose lease epoch
is not current in the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.adapters.state import LayeredStateStore
from autoscaler.adapters.state.lease import LeaseState, PostgresLease
from autoscaler.adapters.state.pg import LATEST, PostgresSettings
from autoscaler.adapters.state.postgres import PostgresStateStore
from autoscaler.core.model import Action, Decision, Memory, Recommendation
from autoscaler.errors import NotLeader, StateError
from tests.support.postgres import PASSWORD, Database

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def settings(db: Database, password: str | None = PASSWORD) -> PostgresSettings:
    return PostgresSettings(dsn=db.dsn, password=password)


def decision(policy: str = "web", at: datetime = T0, desired: int = 4) -> Decision:
    return Decision(
        policy=policy,
        target="aws-asg:web",
        time=at,
        current=2,
        desired=desired,
        action=Action.UP,
        dry_run=False,
        reasons=("load: 4 → 4",),
        checks=(),
    )


@pytest.fixture
def store(postgres_db: Database) -> PostgresStateStore:
    """A store on a fresh database (which creates the tables the lease needs too)."""
    return PostgresStateStore(settings(postgres_db))


def test_memory_round_trips_exactly(store: PostgresStateStore) -> None:
    memory = Memory(
        last_scaled_at=T0,
        recommendations=(Recommendation(at=T0, count=3), Recommendation(at=T0, count=5)),
        missing_data_streak=2,
        missing_data_since=T0 - timedelta(seconds=30),
    )
    store.save("web", "k", memory)
    assert store.load("web", "k") == memory
    assert store.load("other", "k") == Memory(last_scaled_at=T0)  # the target's last action
    assert store.load("web", "elsewhere") == Memory()  # moved to another target: afresh


def test_the_last_action_only_moves_forward_and_a_withdrawal_goes_back(
    store: PostgresStateStore,
) -> None:
    later = T0 + timedelta(minutes=1)
    store.save("web", "k", Memory(last_scaled_at=later))
    store.save("web", "k", Memory(last_scaled_at=T0))
    assert store.load("web", "k").last_scaled_at == later
    store.withdraw("k", at=later, previous=T0)
    assert store.load("web", "k").last_scaled_at == T0
    store.withdraw("k", at=T0, previous=None)
    assert store.load("web", "k").last_scaled_at is None


def test_history_is_newest_first_filtered_and_pruned(postgres_db: Database) -> None:
    store = PostgresStateStore(settings(postgres_db), keep_decisions=3, keep_for=timedelta(1))
    for i in range(5):
        store.record(decision("web" if i % 2 == 0 else "api", T0 + timedelta(seconds=i)))
    assert [d.time.second for d in store.history()] == [4, 3, 2]
    assert [d.policy for d in store.history(policy="api")] == ["api"]
    assert store.history(limit=1)[0] == decision("web", T0 + timedelta(seconds=4))
    store.record(decision("web", T0 + timedelta(days=2)))  # older than a day goes
    assert [d.time for d in store.history()] == [T0 + timedelta(days=2)]


def test_a_decision_written_again_after_a_lost_answer_is_stored_once(
    store: PostgresStateStore, postgres_db: Database
) -> None:
    store.record(decision())
    store.record(decision())  # the retry of a write whose commit's answer was lost
    assert store.history() == [decision()]
    assert postgres_db.query("SELECT count(*) FROM autoscaler_decisions") == [(1,)]


def test_the_controller_creates_its_schema_once_and_records_the_version(
    postgres_db: Database,
) -> None:
    PostgresStateStore(settings(postgres_db)).close()
    PostgresStateStore(settings(postgres_db)).close()  # a second start migrates nothing
    assert postgres_db.query("SELECT version FROM autoscaler_schema") == [(LATEST,)]


def test_a_database_written_by_a_newer_version_is_refused(postgres_db: Database) -> None:
    PostgresStateStore(settings(postgres_db)).close()
    postgres_db.query("INSERT INTO autoscaler_schema (version) VALUES (99) RETURNING 1")
    with pytest.raises(StateError, match="schema version 99, written by a newer autoscaler"):
        PostgresStateStore(settings(postgres_db))
    with pytest.raises(StateError, match="schema version 99, written by a newer autoscaler"):
        PostgresStateStore(settings(postgres_db), read_only=True)  # `plan` reads it no more


def test_read_only_creates_nothing_and_needs_existing_state(postgres_db: Database) -> None:
    with pytest.raises(StateError, match="holds no autoscaler state"):
        PostgresStateStore(settings(postgres_db), read_only=True)
    assert postgres_db.query("SELECT to_regclass('autoscaler_schema') IS NULL") == [(True,)]


def test_the_password_is_never_in_a_message(postgres_db: Database) -> None:
    wrong = "wrong-pass-0d5e"
    with pytest.raises(StateError) as raised:
        PostgresStateStore(
            PostgresSettings(dsn=postgres_db.dsn.replace("autoscaler@", f"autoscaler:{wrong}@"))
        )
    assert wrong not in str(raised.value)
    assert str(raised.value).startswith("cannot connect to state database postgresql://127.0.0.1")
    with pytest.raises(StateError) as raised:
        PostgresStateStore(settings(postgres_db, password=wrong))
    assert wrong not in str(raised.value)


# --- fencing and the lease -------------------------------------------------------------------


def test_a_fenced_store_writes_only_under_the_current_epoch(postgres_db: Database) -> None:
    lease = PostgresLease(settings(postgres_db))
    store = PostgresStateStore(settings(postgres_db), fenced=True)
    with pytest.raises(NotLeader):
        store.record(decision())  # no lease named yet
    a = lease.acquire("a", 0.5, epoch=None)
    store.fence_with("a", a.epoch)
    store.record(decision(at=T0))

    # a pauses; its lease lapses in the database's time and b takes over.
    b = _acquire_when_free(lease, "b")
    assert b.epoch == a.epoch + 1
    with pytest.raises(NotLeader, match="no longer current"):
        store.save("web", "k", Memory(last_scaled_at=T0))
    with pytest.raises(NotLeader):
        store.record(decision(at=T0 + timedelta(seconds=1)))
    assert store.history() == [decision(at=T0)]
    assert store.load("web", "k") == Memory()
    assert postgres_db.query("SELECT holder, epoch FROM autoscaler_decisions") == [("a", 1)]


def _acquire_when_free(lease: PostgresLease, holder: str) -> LeaseState:
    for _ in range(100):
        state = lease.acquire(holder, 5, epoch=None)
        if state.held:
            return state
        lease.wait_for_release(0.05)
    raise AssertionError("the lease never became free")


def test_the_lease_is_renewed_by_its_holder_and_refused_to_others(
    store: PostgresStateStore, postgres_db: Database
) -> None:
    lease = PostgresLease(settings(postgres_db))
    a = lease.acquire("a", 30, epoch=None)
    assert (a.held, a.holder, a.epoch) == (True, "a", 1)
    assert a.expires_at is not None
    # The TTL from the statement's start; `db_now` is when the row was written, after it.
    started = a.db_now - timedelta(seconds=a.waited)
    assert a.expires_at - started == timedelta(seconds=30)
    b = lease.acquire("b", 30, epoch=None)
    assert (b.held, b.holder, b.epoch) == (False, "a", 1)
    renewed = lease.acquire("a", 30, epoch=1)
    assert (renewed.held, renewed.epoch) == (True, 1)
    assert lease.acquire("a", 30, epoch=None).held is False  # a restarted "a" is another one
    left = lease.confirm("a", 1)
    assert left is not None and 29 < left <= 30
    assert lease.confirm("a", 2) is None and lease.confirm("b", 1) is None


def test_a_lapsed_lease_is_resumed_with_its_epoch_when_nobody_took_it(
    store: PostgresStateStore,
    postgres_db: Database,
) -> None:
    lease = PostgresLease(settings(postgres_db))
    lease.acquire("a", 0.2, epoch=None)
    lease.wait_for_release(0.3)
    assert lease.confirm("a", 1) is None  # lapsed
    resumed = lease.acquire("a", 30, epoch=1)
    assert (resumed.held, resumed.epoch) == (True, 1)


def test_a_released_lease_is_taken_at_once_and_the_standbys_are_told(
    store: PostgresStateStore,
    postgres_db: Database,
) -> None:
    leader = PostgresLease(settings(postgres_db))
    standby = PostgresLease(settings(postgres_db))
    a = leader.acquire("a", 60, epoch=None)
    assert standby.wait_for_release(0.05) is False  # listening from now on
    assert leader.release("a", a.epoch)
    assert standby.wait_for_release(5) is True
    b = standby.acquire("b", 60, epoch=None)
    assert (b.held, b.epoch) == (True, 2)
    assert leader.release("a", a.epoch) is False  # not a's to release any more


def test_a_new_leader_forgets_memory_from_before_and_a_resumed_one_keeps_it(
    postgres_db: Database,
) -> None:
    lease = PostgresLease(settings(postgres_db))
    pg = PostgresStateStore(settings(postgres_db), fenced=True)
    state = LayeredStateStore(pg)
    a = lease.acquire("a", 60, epoch=None)
    pg.fence_with("a", a.epoch)
    state.lead(a.epoch)
    state.save("web", "k", Memory(missing_data_streak=1))

    state.standby()  # deposed: reads come from the database, writes are refused
    postgres_db.query(
        "UPDATE autoscaler_memory SET missing_data_streak = 7 RETURNING 1"
    )  # what a later leader wrote
    assert state.load("web", "k").missing_data_streak == 7
    with pytest.raises(NotLeader):
        state.save("web", "k", Memory())
    state.lead(a.epoch)  # resumed: memory was right all along
    assert state.load("web", "k").missing_data_streak == 1
    state.lead(a.epoch + 1)  # a new epoch: the database is newer than memory
    assert state.load("web", "k").missing_data_streak == 7


def test_policy_churn_leaves_the_database_at_its_baseline_after_the_retention(
    store: PostgresStateStore,
) -> None:
    def rows() -> tuple[int, int]:
        memory = store._read("SELECT count(*) FROM autoscaler_memory", ())[0][0]
        targets = store._read("SELECT count(*) FROM autoscaler_targets", ())[0][0]
        return int(memory), int(targets)

    now = datetime.now(UTC)
    store.save("web", "k/web", Memory(last_scaled_at=now - timedelta(days=30)))
    baseline = rows()
    for i in range(200):
        store.save(f"churn-{i}", f"k/churn-{i}", Memory(last_scaled_at=now))
    kept = store.drop_removed({"web"}, {"k/web"}, before=now - timedelta(days=7))
    assert kept.policies == [] and kept.targets == 0
    assert store.load("churn-7", "k/churn-7").last_scaled_at == now

    dropped = store.drop_removed({"web"}, {"k/web"}, before=now + timedelta(seconds=5))
    assert len(dropped.policies) == 200 and dropped.targets == 200
    assert rows() == baseline
    assert store.load("web", "k/web").last_scaled_at == now - timedelta(days=30)
