"""The README's alerts on the controller, run by `promtool test rules` on made-up series:
each fires on the condition it names, and stays quiet on a standby and once it is over.
`promtool check rules` (test_readme_operations) says they parse, not that they fire."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
REPLICA = {"job": "autoscaler", "instance": "a:8080"}
STANDBY = {"job": "autoscaler", "instance": "b:8080"}


def _alerts() -> str:
    (block,) = [
        b
        for b in re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)
        if "AutoscalerPolicyStale" in b
    ]
    return str(block)


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    pairs = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{pairs}}}", "values": values}


def _promtool_test(
    tmp_path: Path, series: list[dict[str, str]], expected: list[dict[str, Any]]
) -> None:
    (tmp_path / "rules.yml").write_text(_alerts())
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": expected}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests))
    done = subprocess.run(
        ["promtool", "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _fires(alert: str, at: str, *labels: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [{"exp_labels": dict(one)} for one in labels],
    }


def _leaders() -> list[dict[str, str]]:
    return [
        _series("autoscaler_leader", REPLICA, "1x40"),
        _series("autoscaler_leader", STANDBY, "0x40"),
    ]


def test_a_policy_without_data_for_ten_minutes_fires_on_the_leader_only(tmp_path: Path) -> None:
    # promtool's time() starts at 0: a policy without data since 0 (both replicas say so:
    # the standby's series is frozen at what it saw while it led).
    since = "0x40"
    web = {**REPLICA, "policy": "web"}
    _promtool_test(
        tmp_path,
        [
            *_leaders(),
            _series("autoscaler_missing_data_since_timestamp_seconds", web, since),
            _series(
                "autoscaler_missing_data_since_timestamp_seconds",
                {**STANDBY, "policy": "web"},
                since,
            ),
        ],
        [
            _fires("AutoscalerPolicyWithoutData", "9m"),
            _fires("AutoscalerPolicyWithoutData", "11m", web),
        ],
    )


def test_data_coming_back_ends_the_without_data_alert(tmp_path: Path) -> None:
    web = {**REPLICA, "policy": "web"}
    _promtool_test(
        tmp_path,
        [*_leaders(), _series("autoscaler_missing_data_since_timestamp_seconds", web, "0x15 _x20")],
        [
            _fires("AutoscalerPolicyWithoutData", "12m", web),
            _fires("AutoscalerPolicyWithoutData", "22m"),
        ],
    )


def test_an_unreachable_target_fires_after_ten_minutes_of_errors(tmp_path: Path) -> None:
    target = {**REPLICA, "policy": "web", "kind": "target"}
    _promtool_test(
        tmp_path,
        [*_leaders(), _series("autoscaler_evaluation_errors_total", target, "1+4x40")],
        [
            _fires("AutoscalerTargetUnreachable", "8m"),
            _fires("AutoscalerTargetUnreachable", "13m", target),
        ],
    )


def test_a_policys_first_scaling_failure_fires(tmp_path: Path) -> None:
    # The series is made by the failure, at 1: increase() alone never sees it rise.
    scale = {**REPLICA, "policy": "web", "kind": "scale"}
    _promtool_test(
        tmp_path,
        [*_leaders(), _series("autoscaler_evaluation_errors_total", scale, "_x5 1x40")],
        [
            _fires("AutoscalerScalingFailed", "4m"),
            _fires("AutoscalerScalingFailed", "7m", scale),
            _fires("AutoscalerScalingFailed", "25m"),
        ],
    )


def test_a_scaling_failure_of_a_policy_that_failed_before_fires(tmp_path: Path) -> None:
    scale = {**REPLICA, "policy": "web", "kind": "scale"}
    _promtool_test(
        tmp_path,
        [*_leaders(), _series("autoscaler_evaluation_errors_total", scale, "1x20 2x40")],
        [
            _fires("AutoscalerScalingFailed", "19m"),
            _fires("AutoscalerScalingFailed", "22m", scale),
        ],
    )


@pytest.mark.parametrize(
    ("interval", "quiet", "firing"),
    [
        pytest.param("15x40", "4m", "7m", id="every-15s"),
        pytest.param("600x40", "14m", "17m", id="every-10m"),
    ],
)
def test_a_policy_that_stopped_evaluating_cleanly_is_stale(
    tmp_path: Path, interval: str, quiet: str, firing: str
) -> None:
    web = {**REPLICA, "policy": "web"}
    _promtool_test(
        tmp_path,
        [
            *_leaders(),
            _series("autoscaler_policy_interval_seconds", web, interval),
            _series("autoscaler_last_successful_evaluation_timestamp_seconds", web, "0x40"),
        ],
        [_fires("AutoscalerPolicyStale", quiet), _fires("AutoscalerPolicyStale", firing, web)],
    )


def test_no_leader_fires_when_every_replica_stands_by(tmp_path: Path) -> None:
    _promtool_test(
        tmp_path,
        [
            _series("autoscaler_leader", REPLICA, "1x5 0x20"),
            _series("autoscaler_leader", STANDBY, "0x25"),
        ],
        [_fires("AutoscalerNoLeader", "5m"), _fires("AutoscalerNoLeader", "9m", {})],
    )


def test_a_policy_evaluated_every_ten_minutes_is_not_stale_between_evaluations(
    tmp_path: Path,
) -> None:
    nightly = {**REPLICA, "policy": "nightly"}
    successes = " ".join(str(600 * (minute // 10)) for minute in range(40))  # every 10 min
    _promtool_test(
        tmp_path,
        [
            *_leaders(),
            _series("autoscaler_policy_interval_seconds", nightly, "600x40"),
            _series("autoscaler_last_successful_evaluation_timestamp_seconds", nightly, successes),
        ],
        [_fires("AutoscalerPolicyStale", "9m"), _fires("AutoscalerPolicyStale", "19m")],
    )


def test_a_leader_that_lost_its_lease_fires_but_a_handover_does_not(tmp_path: Path) -> None:
    # A lapse between two scrapes: `autoscaler_leader` never showed 0.
    lapsed = {**REPLICA, "transition": "lapsed"}
    released = {**STANDBY, "transition": "released"}
    _promtool_test(
        tmp_path,
        [
            *_leaders(),
            _series("autoscaler_leader_transitions_total", lapsed, "0x5 1x40"),
            _series("autoscaler_leader_transitions_total", released, "0x5 1x40"),
        ],
        [
            _fires("AutoscalerLeaderLost", "4m"),
            _fires("AutoscalerLeaderLost", "8m", lapsed),
            _fires("AutoscalerLeaderLost", "25m"),
        ],
    )
