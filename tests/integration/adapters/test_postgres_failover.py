"""Taking over from a leader stopped in the middle of a write, against a real PostgreSQL.

Every fenced write locks the lease row `FOR SHARE` until it commits, and a takeover waits
for that lock. A leader paused (SIGSTOP, a GC pause, a frozen VM) or cut off between its
statements and its commit left its session "idle in transaction", holding the lock, for as
long as it stayed so (PostgreSQL's defaults: forever, or about two hours of keepalives
once its host was gone): no standby could take over, whatever the TTL. Here a real
process leads, writes in a loop and is really stopped with SIGSTOP inside a transaction.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from autoscaler.adapters.state.lease import PostgresLease
from autoscaler.adapters.state.pg import Connector, PostgresSettings
from autoscaler.adapters.state.postgres import PostgresStateStore
from autoscaler.errors import StateError
from autoscaler.service.leadership import Leadership
from tests.support.postgres import PASSWORD, Database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
TTL = 2.0

# The leader: takes the lease, then saves the memory of policy "web" over and over, its
# missing-data streak counting the writes, and prints how each went.
LEADER = """
import sys, time
from autoscaler.adapters.state import LayeredStateStore
from autoscaler.adapters.state.pg import Connector, PostgresSettings
from autoscaler.adapters.state.postgres import PostgresStateStore
from autoscaler.core.model import Memory
from autoscaler.errors import NotLeader, StateError
from autoscaler.service.leadership import replicate

store = PostgresStateStore(PostgresSettings(dsn=sys.argv[1]), fenced=True)
state = LayeredStateStore(store)
state.standby()
lead = replicate(store, state, replica="a", ttl=float(sys.argv[2]))
lead.start()
while not lead.acting():
    time.sleep(0.01)
for n in range(1, 10**9):
    try:
        store.save("web", "k", Memory(missing_data_streak=n))
        print("ok", n, flush=True)
    except NotLeader as exc:
        print("refused", n, exc, flush=True)
        time.sleep(0.05)
    except StateError as exc:
        print("failed", n, exc, flush=True)
        time.sleep(0.05)
"""


class Leader:
    """The leader's process and the lines it printed so far."""

    def __init__(self, db: Database) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LEADER, db.dsn, str(TTL)],
            cwd=ROOT,
            env={**os.environ, "PGPASSWORD": PASSWORD},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            assert self.proc.poll() is None, "the leader's process ended"
            assert time.monotonic() < deadline, f"the leader printed only {self.lines}"
            time.sleep(0.02)

    def stop_in_a_transaction(self, db: Database) -> None:
        """SIGSTOP the process while its state session is inside a write transaction, past
        the fence (the session's last statement not its `BEGIN`): it holds the lease row."""
        for attempt in range(200):
            self.proc.send_signal(signal.SIGSTOP)
            time.sleep(0.05)  # a statement sent just before the stop is answered
            sessions = db.query(
                "SELECT state, query FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'autoscaler-state'"
            )
            if [state for state, query in sessions if query != "BEGIN"] == ["idle in transaction"]:
                return
            self.proc.send_signal(signal.SIGCONT)
            time.sleep(0.003 * (attempt % 7))
        raise AssertionError("the leader was never stopped inside a transaction")


@pytest.fixture
def leader(postgres_db: Database) -> Iterator[Leader]:
    process = Leader(postgres_db)
    yield process
    process.proc.send_signal(signal.SIGCONT)
    process.proc.kill()
    process.proc.wait(10)


def streak(db: Database) -> object:
    return db.query("SELECT missing_data_streak FROM autoscaler_memory WHERE policy = 'web'")


def test_a_leader_stopped_mid_write_is_taken_over_within_the_ttl_and_its_write_is_lost(
    postgres_db: Database, leader: Leader
) -> None:
    leader.wait_for(3)
    leader.stop_in_a_transaction(postgres_db)
    stopped = time.monotonic()
    time.sleep(0.2)  # every line printed before the stop read
    seen = len(leader.lines)
    written = max(int(line.split()[1]) for line in leader.lines if line.startswith("ok"))
    assert streak(postgres_db) == [(written,)]  # the write under way is not committed

    # The standby's own statement timeout is short, so each try ends quickly.
    settings = PostgresSettings(dsn=postgres_db.dsn, password=PASSWORD, statement_timeout=1)
    lease = PostgresLease(settings)
    standby = Leadership(lease, replica="b", ttl=TTL)
    bound = TTL + TTL / 3 + 2.0  # the lease, the idle session's end, and polling on a busy host
    while not standby.step():
        assert time.monotonic() - stopped < bound, (
            f"no takeover {bound:g} s after the leader stopped: {standby.problem()}"
        )
        time.sleep(0.1)
    assert standby.acting()
    taken_over = streak(postgres_db)

    # Resumed, the leader's open transaction is gone: its write and every one after fail.
    leader.proc.send_signal(signal.SIGCONT)
    leader.wait_for(seen + 3)
    after = leader.lines[seen:]
    # Failed at the database, or refused first by the leader's own lease check when the
    # lease ran out before the write was tried (a slow, busy machine): nothing written.
    assert after[0].split()[:2] in (["failed", str(written + 1)], ["refused", str(written + 1)]), (
        after
    )
    assert all(not line.startswith("ok") for line in after), after
    assert streak(postgres_db) == taken_over == [(written,)]
    standby.release()
    lease.close()


def test_a_takeover_blocked_by_a_locked_lease_row_says_so(postgres_db: Database) -> None:
    settings = PostgresSettings(dsn=postgres_db.dsn, password=PASSWORD, statement_timeout=0.5)
    PostgresStateStore(settings).close()  # the tables
    lease = PostgresLease(settings)
    assert lease.acquire("a", 0.2, epoch=None).held
    time.sleep(0.3)  # expired: free to take
    with postgres_db.connect() as other, other.transaction():
        other.execute("SELECT 1 FROM autoscaler_lease FOR SHARE")
        with pytest.raises(StateError) as raised:
            lease.acquire("b", TTL, epoch=None)
    assert "lease row locked by another session (a leader paused mid-write?)" in str(raised.value)
    assert lease.acquire("b", TTL, epoch=None).held  # the lock gone, the lease is taken
    lease.close()


def test_the_server_ends_a_session_left_idle_in_a_transaction_or_by_a_vanished_client(
    postgres_db: Database,
) -> None:
    settings = PostgresSettings(dsn=postgres_db.dsn, password=PASSWORD, statement_timeout=0.5)
    conn = Connector(settings).connect(purpose="state")
    shown = {
        name: conn.execute(f"SHOW {name}").fetchone()
        for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
    }
    assert shown == {
        "tcp_keepalives_idle": ("5",),
        "tcp_keepalives_interval": ("2",),
        "tcp_keepalives_count": ("3",),
    }
    assert conn.execute("SHOW tcp_user_timeout").fetchone() == ("10000",)
    conn.execute("BEGIN")
    time.sleep(1.0)  # twice the statement timeout, idle in the transaction
    with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
        conn.execute("COMMIT")
    conn.close()
