"""The service holds a bounded number of sockets, whatever the number of policies.

One HTTP session per target kept one socket open per target: 1,000 policies meant 1,000
descriptors, and the usual `ulimit -n 1024` ran out. Connections are pooled per server.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.net import wait_until
from tests.support.nomad_api import NomadApiStandIn
from tests.support.service import FakePrometheus, ServiceProcess

pytestmark = pytest.mark.integration

POLICIES = 300


def open_sockets(pid: int) -> int:
    """Sockets among the open file descriptors of process `pid` (from /proc)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:  # closed meanwhile
            continue
    return count


def test_the_service_holds_a_bounded_number_of_sockets_whatever_the_number_of_policies(
    service_factory: Callable[..., ServiceProcess],
    nomad_api: NomadApiStandIn,
    fake_prometheus: FakePrometheus,
) -> None:
    check = "  - name: load\n    query: 'sum(load)'\n    strategy: per-instance\n    target: 1\n"
    policies = {}
    for i in range(POLICIES):
        nomad_api.register_job(f"job{i}", {"web": 1})
        policies[f"p{i}"] = (
            f"name: p{i}\ntarget: {{type: nomad, job: job{i}, group: web}}\n"
            f"min: 1\nmax: 9\ninterval: 1s\ndry_run: true\nchecks:\n{check}"
        )
    service = service_factory(
        prometheus_url=fake_prometheus.url,
        env=nomad_api.env,
        policies=policies,
        args=["--workers=8"],
    ).start()
    assert service.proc is not None

    # Every policy evaluated (3 reads each: scale status, job, deployment), then twice more
    # for the pool to settle (2 reads each: the unchanged job is not read again).
    wait_until(
        lambda: len(nomad_api.requests_to("GET")) >= (3 + 2 + 2) * POLICIES,
        timeout=90,
        what="three passes over every policy",
    )
    held = open_sockets(service.proc.pid)
    print(f"sockets held with {POLICIES} policies: {held}")

    assert service.stop() == 0
    # The HTTP listener, the event loop's own pair, and pools of Nomad and Prometheus
    # bounded by the 8 workers; not one per policy.
    assert held <= 40, held
