"""A state database that stops answering (the server hung, not gone) never hangs us.

A stopped server refuses connections and a lost host ends in TCP keepalives, but a server
that is alive and does not answer (SIGSTOP, a stuck disk, a frozen VM) keeps the
connection open: the kernel acknowledges every byte, so neither keepalives nor
`tcp_user_timeout` fire, and the server-side `statement_timeout` cannot fire either.
Without a deadline of our own, the call waited forever, holding the store's lock, and
every evaluation behind it waited too. Here the server's processes are really stopped
with SIGSTOP: each call must fail within its deadline with a `StateError` that says so,
and work again once the server resumes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from autoscaler.adapters.state import LayeredStateStore
from autoscaler.adapters.state.lease import PostgresLease
from autoscaler.adapters.state.pg import Connector, PostgresSettings
from autoscaler.adapters.state.postgres import PostgresStateStore
from autoscaler.core.model import Memory
from autoscaler.errors import StateError
from tests.integration.adapters.test_postgres_state import T0, decision
from tests.support.postgres import PASSWORD, Database, PostgresServer

pytestmark = pytest.mark.integration

TIMEOUT = 0.5  # the statement timeout the store runs with here: 1 s without an answer


def _within(seconds: float, call: Callable[[], object]) -> tuple[float, BaseException | None]:
    """How long `call` took and what it raised, failing the test (not hanging it) when it
    does not return within `seconds`."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting on the hung database after {seconds} s"
    return time.monotonic() - started, outcome[0]


@pytest.fixture
def server(make_postgres: Callable[[], PostgresServer]) -> PostgresServer:
    return make_postgres()


def _settings(server: PostgresServer) -> PostgresSettings:
    return PostgresSettings(
        dsn=server.database().dsn, password=PASSWORD, connect_timeout=2, statement_timeout=TIMEOUT
    )


def test_a_write_to_a_hung_database_fails_in_time_and_the_next_one_works_once_it_answers(
    server: PostgresServer,
) -> None:
    store = PostgresStateStore(_settings(server))
    store.record(decision())  # the connection is open and in use before the server hangs
    with server.hung():
        took, error = _within(30, lambda: store.record(decision(at=T0.replace(minute=1))))
    assert isinstance(error, StateError), error
    assert "no answer" in str(error) and "hung" in str(error), str(error)
    assert took < 5
    assert store.durability_problem() is not None
    store.record(decision(at=T0.replace(minute=2)))  # a fresh connection, once it answers
    assert [d.time.minute for d in store.history(policy="web")] == [2, 0]
    store.close()


def test_reads_and_connections_to_a_hung_database_fail_in_time(server: PostgresServer) -> None:
    store = PostgresStateStore(_settings(server))
    store.save("web", "aws-asg:web", Memory(last_scaled_at=T0))
    with server.hung():
        took, error = _within(30, lambda: store.load("web", "aws-asg:web"))
        assert isinstance(error, StateError) and took < 5, (took, error)
        # The connection was dropped: the next call has to connect to the hung server.
        took, error = _within(30, lambda: store.load("web", "aws-asg:web"))
        assert isinstance(error, StateError) and took < 5, (took, error)
    assert store.load("web", "aws-asg:web").last_scaled_at == T0
    store.close()


def test_the_lease_on_a_hung_database_fails_in_time_and_is_renewed_once_it_answers(
    server: PostgresServer,
) -> None:
    settings = _settings(server)
    PostgresStateStore(settings).close()  # creates the tables
    lease = PostgresLease(settings)
    first = lease.acquire("a", 30, epoch=None)
    assert first.held
    with server.hung():
        took, error = _within(30, lambda: lease.confirm("a", first.epoch))
    assert isinstance(error, StateError), error
    assert "no answer" in str(error), str(error)
    assert took < 5
    assert lease.acquire("a", 30, epoch=first.epoch).epoch == first.epoch
    lease.close()


def test_a_transaction_longer_than_the_deadline_is_not_cut_while_each_statement_answers(
    postgres_db: Database,
) -> None:
    settings = PostgresSettings(dsn=postgres_db.dsn, password=PASSWORD, statement_timeout=1.0)
    connector = Connector(settings)
    conn = connector.connect(purpose="test")
    started = time.monotonic()
    with connector.answering(conn, "test"), conn.transaction():
        for _ in range(5):  # each well within the deadline (2 s), all five beyond it
            conn.execute("SELECT pg_sleep(0.6)")
    assert time.monotonic() - started > settings.answer_timeout
    assert not conn.broken
    conn.close()


def test_through_the_layered_store_a_hang_costs_one_deadline_and_loses_nothing(
    server: PostgresServer,
) -> None:
    durable = PostgresStateStore(_settings(server))
    store = LayeredStateStore(durable, retry_after=60)
    store.record(decision())
    with server.hung():
        took, error = _within(30, lambda: store.record(decision(at=T0.replace(minute=1))))
        assert isinstance(error, StateError) and took < 5, (took, error)
        # The next writes fail at once with the same error rather than each waiting out
        # a deadline (evaluations go on, holding scale-in, until the database answers).
        took, error = _within(30, lambda: store.record(decision(at=T0.replace(minute=2))))
        assert isinstance(error, StateError) and "no answer" in str(error), error
        assert took < 1.0  # no round trip: the hung server would keep it 1 s (2 s to connect)
    store.flush()  # the database answers again: what was pending is written
    assert [d.time.minute for d in durable.history(policy="web")] == [2, 1, 0]
    store.close()


def test_a_connection_cut_just_as_its_block_ended_is_closed_not_handed_out_again(
    postgres_db: Database,
) -> None:
    settings = PostgresSettings(dsn=postgres_db.dsn, password=PASSWORD, statement_timeout=TIMEOUT)
    connector = Connector(settings)
    conn = connector.connect(purpose="test")
    with connector.answering(conn, "test"):
        conn.execute("SELECT 1")  # answered; then the block outlives its deadline
        time.sleep(settings.answer_timeout + 0.5)
    assert conn.closed  # else it would look usable, and fail the next call that takes it
