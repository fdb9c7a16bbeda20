"""`plan` at the usual open-files limit, and a process out of file descriptors.

With one HTTP session per target, `plan` of 2,000 Nomad policies under `ulimit -n 1024`
held a socket per target, reached 1,021, and then retried EMFILE until each target's
deadline, one after the other: hours of silence. Connections are pooled per server, and
running out of descriptors is an error that says so at once.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.nomad_api import NomadApiStandIn
from tests.support.service import FakePrometheus

pytestmark = pytest.mark.integration

# Generous: these guard against a hang, they do not measure speed.
HANG_GUARD = 240


def nomad_policy(name: str, job: str, check: str | None = None) -> str:
    check = check or "  - {name: fixed, strategy: fixed, count: 3}\n"
    return (
        f"name: {name}\ntarget: {{type: nomad, job: {job}, group: web}}\n"
        f"min: 1\nmax: 9\nchecks:\n{check}"
    )


def run_limited(
    args: list[str], *, limit: int, env: Mapping[str, str], timeout: float = HANG_GUARD
) -> subprocess.CompletedProcess[str]:
    """`python -m autoscaler ARGS` with the open-files limit (soft and hard) at `limit`."""

    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        preexec_fn=lower_limit,
        check=False,
    )


@pytest.mark.timeout(HANG_GUARD + 60)
def test_plan_of_2000_nomad_policies_completes_at_the_usual_open_files_limit(
    nomad_api: NomadApiStandIn, tmp_path: Path
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    for i in range(2000):
        nomad_api.register_job(f"job{i}", {"web": 2})
        (folder / f"p{i}.yaml").write_text(nomad_policy(f"p{i}", f"job{i}"))

    result = run_limited(["plan", str(folder), "-o", "json"], limit=1024, env=nomad_api.env)

    assert result.returncode == 0, result.stderr[-2000:]
    plans = json.loads(result.stdout)
    assert len(plans) == 2000
    assert {(p["current"], p["desired"], p["error"]) for p in plans} == {(2, 3, None)}


# Run in the child: import what `plan` needs, then use up every file descriptor but one,
# which reading the one policy file needs; no connection can be opened after that.
_STARVED = """
import os, resource, sys
import autoscaler.cli.main as cli
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
os.close(held.pop())
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_process_out_of_file_descriptors_says_so_at_once_instead_of_retrying(
    nomad_api: NomadApiStandIn, fake_prometheus: FakePrometheus, tmp_path: Path
) -> None:
    nomad_api.register_job("chat", {"web": 2})
    policy = tmp_path / "chat.yaml"
    check = "  - name: load\n    query: 'sum(load)'\n    strategy: per-instance\n    target: 1\n"
    policy.write_text(nomad_policy("chat", "chat", check))
    env = {**os.environ, **nomad_api.env, "AUTOSCALER_PROMETHEUS_URL": fake_prometheus.url}

    result = subprocess.run(
        [sys.executable, "-c", _STARVED, "plan", str(policy), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        env=env,
        check=False,
    )

    assert result.returncode == 3, result.stderr[-2000:]
    (plan,) = json.loads(result.stdout)
    assert plan["action"] == "hold"
    # The Nomad connection took the last descriptor; Prometheus could not be reached.
    assert "ran out of open files of the process (EMFILE" in plan["error"]
    assert "open-files limit is 64: raise it (ulimit -n)" in plan["error"]
    assert fake_prometheus.queries == []
    assert "attempt" not in plan["error"]  # not retried until the deadline
