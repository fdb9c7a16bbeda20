"""How `autoscaler run` starts on a shared PostgreSQL state, run as the real command.

A one-off pass (`run --once`) while another replica leads is refused with a message that
fits a one-off pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.adapters.state import LayeredStateStore
from autoscaler.config.state import open_postgres_state
from autoscaler.service.leadership import Leadership, replicate
from tests.support.postgres import Database

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
