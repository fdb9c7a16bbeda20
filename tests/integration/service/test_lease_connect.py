"""A lease renewal that must connect again, slowly, on a real PostgreSQL.

A renewal whose kept connection was ended (a database restart, a server that dropped the
session) connects again inside the renewal, and a connection attempt may wait its whole
connect timeout: a host that takes the connection and never answers, as the first of a
libpq multi-host list (`host=a,b`) when `a` is down behind a firewall that drops packets.

- Safety: such a renewal never lets a leader act past its lease. Its validity counts from
  when it was sent, so a leader whose reconnect outlasts its lease stops acting at its
  local deadline, a standby takes over once the database expires it, and the old leader's
  scale fence and state writes are refused.
- Liveness: the lease's connections give up after a quarter of the TTL (whole seconds, 2
  at least: libpq's minimum), as its statements do. Before, they waited the store's 5 s
  per address, so one silent host cost a 6 s lease its validity while the database, one
  address further, answered at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from autoscaler.adapters.state import LayeredStateStore
from autoscaler.adapters.state.pg import PostgresSettings
from autoscaler.adapters.state.postgres import PostgresStateStore
from autoscaler.config.state import open_postgres_state
from autoscaler.core.model import Memory
from autoscaler.errors import NotLeader
from autoscaler.service.leadership import Leadership, replicate
from tests.support.postgres import PASSWORD, USER, Database

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def silent_hosts(count: int) -> Iterator[list[int]]:
    """`count` ports on 127.0.0.1 that accept a connection and never answer on it."""
    servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept(server: socket.socket) -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    threads = [threading.Thread(target=accept, args=(s,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield [int(s.getsockname()[1]) for s in servers]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for sock in [*servers, *held]:
            sock.close()


def behind(db: Database, silent: list[int]) -> str:
    """`db`'s DSN with the `silent` ports tried first (a libpq multi-host URI)."""
    hosts = ",".join(f"127.0.0.1:{port}" for port in [*silent, db.server.port])
    return f"postgresql://{USER}@{hosts}/{db.name}"


Replica = tuple[Leadership, LayeredStateStore, PostgresStateStore]


def replica(db: Database, dsn: str, name: str, ttl: float, *, connect_timeout: int = 5) -> Replica:
    """A replica as `run --ha` makes one (the store's `connect_timeout` aside)."""
    if connect_timeout == PostgresSettings.connect_timeout:
        store = open_postgres_state(dsn, str(db.server.password_file))
    else:  # quicker to open through silent hosts
        settings = PostgresSettings(dsn=dsn, password=PASSWORD, connect_timeout=connect_timeout)
        store = PostgresStateStore(settings, fenced=True)
    state = LayeredStateStore(store)
    state.standby()
    return replicate(store, state, replica=name, ttl=ttl), state, store


def cut_lease_sessions(db: Database) -> None:
    """End the lease's sessions on the server (as a restart would), not the store's."""
    db.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND application_name LIKE 'autoscaler-lease%%'",
        db.name,
    )


def sampled(lead: Leadership, stop: threading.Event) -> list[tuple[float, bool]]:
    """`(instant, lead.acting())` every 20 ms until `stop`, in a thread of its own."""
    samples: list[tuple[float, bool]] = []

    def run() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), lead.acting()))
            time.sleep(0.02)

    threading.Thread(target=run, daemon=True).start()
    return samples


def test_a_leader_whose_reconnect_outlasts_its_lease_never_acts_after_it(
    postgres_db: Database,
) -> None:
    ttl = 3.0
    with silent_hosts(3) as silent:
        dsn = behind(postgres_db, silent)
        a, a_state, a_store = replica(postgres_db, dsn, "a", ttl, connect_timeout=2)
        b, b_state, _ = replica(postgres_db, postgres_db.dsn, "b", ttl)
        try:
            a.step()  # connects through the silent hosts (its validity counts from before)
            assert a.step() and a.acting()  # renewed on the kept connection
            epoch = a.epoch
            cut_lease_sessions(postgres_db)
            stop = threading.Event()
            samples = sampled(a, stop)
            renewal = threading.Thread(target=a.step, daemon=True)
            renewal.start()  # reconnects: 2 s per silent host, longer than the lease
            deadline = time.monotonic() + 20
            while not b.step():
                assert time.monotonic() < deadline, "the standby never took over"
                time.sleep(0.05)
            taken = time.monotonic()
            assert b.epoch == (epoch or 0) + 1
            assert renewal.is_alive(), "the renewal should still be connecting"
            assert not a.acting()
            with pytest.raises(NotLeader):
                a.fence()
            with pytest.raises(NotLeader):
                a_store.save("web", "k", Memory())
            renewal.join(30)
            stop.set()
            assert not renewal.is_alive()
            assert not a.acting() and a.role() == "standby"
            late = [at for at, acting in samples if acting and at >= taken]
            assert not late, f"acted {late[-1] - taken:.2f} s after the standby took over"
        finally:
            for lead, state in ((a, a_state), (b, b_state)):
                lead.close()
                state.close()


def test_a_renewal_reconnecting_past_a_silent_host_keeps_the_lease(
    postgres_db: Database,
) -> None:
    ttl = 6.0  # renewed every 2 s, valid 5.7 s from a renewal: a 2 s reconnect fits, 5 s not
    with silent_hosts(1) as silent:
        a, state, _ = replica(postgres_db, behind(postgres_db, silent), "a", ttl)
        try:
            a.step()
            assert a.step() and a.acting()
            cut_lease_sessions(postgres_db)
            time.sleep(a.renew_every)  # the next renewal is due
            stop = threading.Event()
            samples = sampled(a, stop)
            started = time.monotonic()
            assert a.step()
            took = time.monotonic() - started
            stop.set()
            assert a.problem() is None
            assert all(acting for _, acting in samples), (
                f"the lease lapsed while the renewal connected again ({took:.1f} s)"
            )
            assert took < ttl / 4 + 1.5, f"the renewal took {took:.1f} s"
        finally:
            a.close()
            state.close()
