"""A restart of the state database between two calls goes unnoticed, on a real PostgreSQL.

A restart ends every session, and nothing tells the client until it sends something: the
store and the lease keep their connection between calls, so the first statement after a
restart found it dead. Before, that call failed (`terminating connection due to
administrator command`): the leader's first write after the restart, its next renewal, and
the release of a SIGTERM handover, which then left the standbys waiting the TTL. A first
statement that finds its kept connection dead ran nothing: it is sent again once, on a new
connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from autoscaler.adapters.state.lease import PostgresLease
from autoscaler.adapters.state.pg import PostgresSettings
from autoscaler.adapters.state.postgres import PostgresStateStore
from autoscaler.core.model import Memory
from tests.integration.adapters.test_postgres_state import T0, decision
from tests.support.postgres import PASSWORD, PostgresServer

pytestmark = pytest.mark.integration


@pytest.fixture
def server(make_postgres: Callable[[], PostgresServer]) -> PostgresServer:
    return make_postgres()


def restart(server: PostgresServer) -> None:
    """A fast shutdown (every session ended), then the same cluster started again."""
    server.stop()
    server.start()


def test_a_write_and_a_read_after_a_database_restart_succeed(server: PostgresServer) -> None:
    settings = PostgresSettings(dsn=server.database().dsn, password=PASSWORD)
    store = PostgresStateStore(settings, fenced=True)
    lease = PostgresLease(settings)
    held = lease.acquire("a", 60, epoch=None)
    store.fence_with("a", held.epoch)
    store.save("web", "k", Memory(last_scaled_at=T0))

    restart(server)
    later = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    store.write([("web", "k", Memory(last_scaled_at=later))], [decision(at=later)])
    assert store.durability_problem() is None
    restart(server)
    assert store.load("web", "k") == Memory(last_scaled_at=later)
    store.close()
    lease.close()


def test_the_lease_is_renewed_and_released_after_a_database_restart(
    server: PostgresServer,
) -> None:
    settings = PostgresSettings(dsn=server.database().dsn, password=PASSWORD)
    PostgresStateStore(settings).close()  # the tables
    lease = PostgresLease(settings)
    held = lease.acquire("a", 60, epoch=None)

    restart(server)
    renewed = lease.acquire("a", 60, epoch=held.epoch)
    assert renewed.held and renewed.epoch == held.epoch
    restart(server)
    assert lease.release("a", held.epoch)  # a SIGTERM handover: the standbys lead at once
    assert lease.acquire("b", 60, epoch=None).held
    lease.close()


def test_a_standby_listens_again_after_a_database_restart_and_misses_no_release(
    server: PostgresServer,
) -> None:
    # The restart also ends a standby's LISTEN session, which shows only when it next
    # waits on it. Before, that wait failed (`consuming input failed: server closed the
    # connection unexpectedly`) and the next one listened again, deaf to a release made
    # in between: the handover waited for the lease to expire instead.
    settings = PostgresSettings(dsn=server.database().dsn, password=PASSWORD)
    PostgresStateStore(settings).close()  # the tables
    first, second = PostgresLease(settings), PostgresLease(settings)
    held = first.acquire("a", 60, epoch=None)
    assert second.wait_for_release(0.05) is False  # listening from now on

    restart(server)
    assert first.release("a", held.epoch)  # before the standby waits again: not heard
    started = time.monotonic()
    # Missed, it waits out its timeout and says False; heard, it returns once it has
    # connected again (seconds on a busy machine, not the 15).
    assert second.wait_for_release(15) is True, "the release was missed"
    assert time.monotonic() - started < 10
    taken = second.acquire("b", 60, epoch=None)
    assert taken.held

    assert first.wait_for_release(0.05) is False  # "a" stands by and listens
    restart(server)
    assert first.wait_for_release(0.2) is False  # listening again, without an error
    later = threading.Timer(0.3, second.release, ("b", taken.epoch))
    later.start()
    assert first.wait_for_release(5) is True  # and told of the next release
    later.join()
    first.close()
    second.close()
