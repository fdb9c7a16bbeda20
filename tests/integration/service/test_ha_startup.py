"""How `autoscaler run` starts on a shared PostgreSQL state, run as the real command.

A one-off pass (`run --once`) while another replica leads is refused with a message that
fits a one-off pass. A replica whose database cannot be reached yet (it boots after the
replicas, or restarts) waits for it and leads once it answers, instead of exiting 4, the
"configuration problem" code systemd units are told not to restart; SIGTERM ends that
wait at once. A database that answers and refuses the settings is still exit 4.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autoscaler.adapters.state import LayeredStateStore
from autoscaler.config.state import open_postgres_state
from autoscaler.service.leadership import Leadership, replicate
from tests.support.net import wait_until
from tests.support.postgres import Database, PostgresServer
from tests.support.service import FakePrometheus, ServiceProcess

pytestmark = pytest.mark.integration

TTL = 3.0
# Disabled: loaded, never evaluated, so that no call to the target outlasts a test's SIGTERM.
POLICY = """\
name: web
enabled: false
target: {type: nomad, job: web, group: web}
min: 1
max: 10
interval: 1s
checks:
  - {name: fixed, strategy: fixed, count: 2}
"""
# The Nomad API is never reached in these tests: nothing answers on port 9.
ENV = {"NOMAD_ADDR": "http://127.0.0.1:9"}


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "web.yaml").write_text(POLICY)
    return folder


@pytest.fixture
def leader(postgres_db: Database) -> Iterator[Leadership]:
    """Replica `a`, leading on `postgres_db` (renewing its lease in its thread)."""
    store = open_postgres_state(postgres_db.dsn, str(postgres_db.server.password_file))
    state = LayeredStateStore(store)
    state.standby()
    lead = replicate(store, state, replica="a", ttl=TTL)
    assert lead.step()
    lead.start()
    yield lead
    lead.stop()
    lead.release()
    lead.close()
    state.close()


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **ENV},
        check=False,
    )


def test_a_one_off_pass_while_a_replica_leads_says_to_stop_it_or_use_plan(
    postgres_db: Database, leader: Leadership, policies: Path
) -> None:
    done = run(
        str(policies),
        "--once",
        "--ha",
        f"--lease-ttl={TTL}",
        f"--state={postgres_db.dsn}",
        f"--state-password-file={postgres_db.server.password_file}",
        "--prometheus-url=http://127.0.0.1:9",
        "--replica-id=ops-once",
    )
    assert done.returncode == 4, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert "a one-off pass (run --once) cannot run while replica a leads" in error, error
    assert "stop that controller first" in error and "autoscaler plan" in error, error
    assert "--ha" not in error, error  # it was given: telling the user to add it misleads
    assert leader.acting()  # the leader was left alone


@pytest.fixture
def stopped_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster made but not started: nothing listens on its port yet."""
    server = PostgresServer()
    yield server
    server.destroy()


def replica(
    factory: Callable[..., ServiceProcess],
    prometheus: FakePrometheus,
    db: Database,
    *args: str,
) -> ServiceProcess:
    """`run --ha` as replica `a` on `db`, started without waiting for its API."""
    return factory(
        prometheus_url=prometheus.url,
        env=ENV,
        state=db.dsn,
        policies={"web": POLICY},
        args=[
            "--ha",
            f"--lease-ttl={TTL}",
            "--replica-id=a",
            f"--state-password-file={db.server.password_file}",
            *args,
        ],
    ).start(wait=False)


def waiting_for_the_database(service: ServiceProcess) -> bool:
    assert service.proc is not None
    if service.proc.poll() is not None:
        raise AssertionError(f"exited with {service.proc.returncode}:\n{service.log()}")
    return any(
        "waiting for it" in str(r.get("message")) and "Connection refused" in str(r.get("message"))
        for r in service.log_records()
    )


def test_a_replica_started_before_its_database_waits_for_it_and_leads(
    stopped_server: PostgresServer,
    service_factory: Callable[..., ServiceProcess],
    fake_prometheus: FakePrometheus,
) -> None:
    db = Database(server=stopped_server, name="postgres")
    a = replica(service_factory, fake_prometheus, db)
    wait_until(lambda: waiting_for_the_database(a), timeout=60, what="a waits for the database")
    time.sleep(1)  # a few tries: still waiting, not exited
    assert waiting_for_the_database(a)

    stopped_server.start()
    wait_until(lambda: _role(a) == "leader", timeout=30, what="a leads once the database is up")
    assert any("state database" in m and "reached after" in m for m in _messages(a))
    assert a.stop() == 0


def test_sigterm_while_waiting_for_the_database_stops_at_once(
    stopped_server: PostgresServer,
    service_factory: Callable[..., ServiceProcess],
    fake_prometheus: FakePrometheus,
) -> None:
    a = replica(service_factory, fake_prometheus, Database(server=stopped_server, name="postgres"))
    wait_until(lambda: waiting_for_the_database(a), timeout=60, what="a waits for the database")
    # Pauses of 0.5, 1, 2, 4, then 8 s between tries: 9 s in, the signal comes early in the
    # 8 s one, so a wait that ran its pause out (or its next try) would take 6 s or more,
    # well beyond a's exit (2 s left no room for saving coverage data on a busy machine).
    time.sleep(9)
    sent = time.monotonic()
    assert a.stop(timeout=15) == 0
    assert time.monotonic() - sent < 5


@pytest.mark.parametrize("wrong", ["password", "database"])
def test_a_database_that_refuses_the_settings_is_still_a_startup_error(
    postgres_db: Database,
    service_factory: Callable[..., ServiceProcess],
    fake_prometheus: FakePrometheus,
    tmp_path: Path,
    wrong: str,
) -> None:
    db = postgres_db
    args: list[str] = []
    if wrong == "password":
        bad = tmp_path / "wrong-password"
        bad.write_text("not-the-password\n")
        args.append(f"--state-password-file={bad}")  # the later flag wins
    else:
        db = Database(server=postgres_db.server, name="no_such_database")
    a = replica(service_factory, fake_prometheus, db, *args)
    assert a.wait_exit(timeout=60) == 4
    expected = "password authentication failed" if wrong == "password" else "does not exist"
    assert expected in a.log(), a.log()
    assert "waiting for it" not in a.log()


def _role(service: ServiceProcess) -> str | None:
    try:
        role: str = service.get("/v1/leader").json()["role"]
    except Exception:
        return None
    return role


def _messages(service: ServiceProcess) -> list[str]:
    return [str(r.get("message", "")) for r in service.log_records()]
