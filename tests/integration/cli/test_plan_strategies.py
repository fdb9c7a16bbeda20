"""Each strategy and each pipeline step, reached through `autoscaler plan --output json`.

Values are pushed into a real Prometheus; the targets are real moto ASGs and the Nomad
API stand-in. The point is the whole path: YAML → PromQL → strategy → pipeline → JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli.test_cli import autoscaler
from tests.support.aws import MotoServer
from tests.support.nomad_api import NomadApiStandIn
from tests.support.prometheus import Metrics

pytestmark = pytest.mark.integration


@pytest.fixture
def plan(
    tmp_path: Path, moto_server: MotoServer, prometheus: Any, nomad_api: NomadApiStandIn
) -> Callable[[str], dict[str, Any]]:
    """Write one policy, run `plan -o json` on it, and return its single plan object."""

    def run(text: str) -> dict[str, Any]:
        folder = tmp_path / "policies"
        folder.mkdir(exist_ok=True)
        (folder / "p.yaml").write_text(text)
        env = {
            **moto_server.env,
            **nomad_api.env,
            "AUTOSCALER_PROMETHEUS_URL": prometheus.url,
        }
        result = autoscaler("plan", str(folder), "-o", "json", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        (obj,) = json.loads(result.stdout)
        return dict(obj)

    return run


def policy(asg: str, checks: str, extra: str = "") -> str:
    return (
        f"name: p\ntarget: {{type: aws-asg, asg: {asg}}}\nmin: 1\nmax: 30\n"
        f"stabilization: {{down: 0s}}\n{extra}checks:\n{checks}"
    )


@pytest.mark.parametrize(
    ("value", "check", "desired", "reason"),
    [
        pytest.param(
            0.5,
            "strategy: target-value\n    target: 0.25",
            8,
            "0.5 / 0.25 → 8",
            id="target-value",
        ),
        pytest.param(
            0.26,
            "strategy: target-value\n    target: 0.25\n    tolerance: 0.1",
            4,
            "within tolerance",
            id="target-value-tolerance",
        ),
        pytest.param(
            130,
            "strategy: per-instance\n    target: 50",
            3,
            "130 / 50 per instance → 3",
            id="per-instance",
        ),
        pytest.param(
            0.07,
            "strategy: threshold\n    steps:\n"
            "      - {above: 0.05, change: '+50%'}\n      - {below: 0.01, change: '-1'}",
            6,
            "+50%",
            id="threshold-up-percent",
        ),
        pytest.param(
            0.001,
            "strategy: threshold\n    steps:\n"
            "      - {above: 0.05, change: '+2'}\n      - {below: 0.01, change: '-1'}",
            3,
            "-1",
            id="threshold-down",
        ),
        pytest.param(7.2, "strategy: pass-through", 8, "7.2 → 8", id="pass-through"),
    ],
)
def test_each_strategy_gives_its_desired_count(
    value: float,
    check: str,
    desired: int,
    reason: str,
    plan: Callable[[str], dict[str, Any]],
    metrics: Metrics,
    make_asg: Callable[..., str],
) -> None:
    asg = make_asg(desired=4, max_size=30)
    metric = metrics.push("value", value)
    obj = plan(policy(asg, f"  - name: c\n    query: {metric}\n    {check}\n"))
    assert obj["current"] == 4
    assert obj["desired"] == desired
    assert obj["checks"][0]["value"] == pytest.approx(value)
    assert any(reason in r for r in obj["reasons"]), obj["reasons"]


def test_fixed_needs_no_query_and_the_highest_check_wins(
    plan: Callable[[str], dict[str, Any]], metrics: Metrics, make_asg: Callable[..., str]
) -> None:
    asg = make_asg(desired=4, max_size=30)
    metric = metrics.push("value", 100)
    obj = plan(
        policy(
            asg,
            "  - name: floor\n    strategy: fixed\n    count: 6\n"
            f"  - name: load\n    query: {metric}\n    strategy: per-instance\n    target: 50\n",
        )
    )
    assert obj["desired"] == 6
    assert obj["action"] == "up"
    assert [c["desired"] for c in obj["checks"]] == [6, 2]
    assert obj["checks"][0]["query"] is None


def test_step_limit_and_schedule_reasons_appear_in_order(
    plan: Callable[[str], dict[str, Any]], metrics: Metrics, make_asg: Callable[..., str]
) -> None:
    asg = make_asg(desired=4, max_size=30)
    metric = metrics.push("value", 1000)
    extra = (
        "limits: {up: {count: 2}}\n"
        "schedules:\n  - name: always\n    cron: '* * * * *'\n    duration: 2m\n    max: 5\n"
    )
    obj = plan(
        policy(asg, f"  - name: c\n    query: {metric}\n    strategy: pass-through\n", extra)
    )
    assert obj["desired"] == 5  # 1000 → limit +2 → 6 → the active schedule's max 5
    reasons = obj["reasons"]
    assert reasons[0].startswith("c: 1000")
    limit_at = next(i for i, r in enumerate(reasons) if r.startswith("limit up +2"))
    schedule_at = next(i for i, r in enumerate(reasons) if r.startswith("schedule always"))
    assert 0 < limit_at < schedule_at, reasons


def test_failed_check_blocks_scale_down_but_not_scale_up(
    plan: Callable[[str], dict[str, Any]], metrics: Metrics, make_asg: Callable[..., str]
) -> None:
    asg = make_asg(desired=4, max_size=30)
    low = metrics.push("low", 10)
    checks = (
        f"  - name: low\n    query: {low}\n    strategy: per-instance\n    target: 50\n"
        f"  - name: missing\n    query: {metrics.name('absent')}\n"
        "    strategy: per-instance\n    target: 50\n"
    )
    obj = plan(policy(asg, checks))
    assert obj["desired"] == 4
    assert obj["action"] == "none"
    assert any("scale-down blocked" in r for r in obj["reasons"]), obj["reasons"]
    assert "no series" in obj["checks"][1]["error"]


def test_nomad_target_plans_with_the_same_json_shape(
    plan: Callable[[str], dict[str, Any]], metrics: Metrics, nomad_api: NomadApiStandIn
) -> None:
    nomad_api.register_job("chat", {"api": 2})
    metric = metrics.push("conversations", 130)
    obj = plan(
        "name: chat\ntarget: {type: nomad, job: chat, group: api}\nmin: 0\nmax: 10\n"
        f"checks:\n  - name: c\n    query: {metric}\n    strategy: per-instance\n    target: 50\n"
    )
    assert set(obj) >= {"policy", "target", "current", "desired", "action", "dry_run", "reasons"}
    assert (obj["current"], obj["desired"], obj["action"]) == (2, 3, "up")
    assert obj["target"].startswith("nomad:chat/api")
    assert nomad_api.group_count("chat", "api") == 2  # plan never scales
