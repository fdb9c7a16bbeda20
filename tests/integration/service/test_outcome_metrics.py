"""What `/metrics` of a running service says of policies that hold or fail (real
Prometheus and moto): one whose query finds no series, one whose ASG does not exist."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.support.aws import MotoServer
from tests.support.net import wait_until
from tests.support.prometheus import PrometheusServer, promtool_lint
from tests.support.service import ServiceProcess, create_asg, policy_yaml

pytestmark = [pytest.mark.integration]


def test_a_policy_without_data_and_one_without_target_are_told_apart(
    prometheus: PrometheusServer, moto_server: MotoServer, tmp_path: Path
) -> None:
    metric = f"t{uuid.uuid4().hex[:10]}_load"
    prometheus.push(metric, 4)
    service = ServiceProcess(tmp_path, prometheus_url=prometheus.url, env=moto_server.env)
    asg = create_asg(moto_server.url)
    service.write_policy("nodata", policy_yaml("nodata", asg=asg, query=f"sum({metric}_absent)"))
    service.write_policy("gone", policy_yaml("gone", asg="no-such-asg", query=f"sum({metric})"))
    started = time.time()
    service.start()
    try:
        since = "autoscaler_missing_data_since_timestamp_seconds"
        wait_until(
            lambda: (
                service.metric("autoscaler_evaluation_errors_total", policy="gone") is not None
                and service.metric(since, policy="nodata") is not None
            ),
            timeout=15,
            what="both policies evaluated",
        )
        # The policy without data holds, and its evaluations are no errors ...
        assert (
            service.metric("autoscaler_evaluations_total", policy="nodata", result="error") is None
        )
        stamp = service.metric(since, policy="nodata")
        assert stamp is not None
        assert started - 1 <= stamp <= time.time()
        # ... while the one whose target is gone fails with kind `target`, and has data.
        errors = service.metric("autoscaler_evaluation_errors_total", policy="gone", kind="target")
        assert errors is not None
        assert errors >= 1
        assert service.metric(since, policy="gone") is None
        exposition = service.get("/metrics").text
        assert promtool_lint(exposition) == (0, "")
        # Data comes: the series goes.
        prometheus.push(f"{metric}_absent", 3)
        wait_until(
            lambda: service.metric(since, policy="nodata") is None,
            timeout=15,
            what="data for the policy",
        )
    finally:
        service.kill()
