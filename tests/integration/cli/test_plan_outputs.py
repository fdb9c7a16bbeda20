"""`autoscaler plan` as users script it: a target out of reach still shows every check,
`--detailed-exitcode`, `-o yaml` and `-o wide`, and the table's summary line.

Real Prometheus (remote write), moto behind the fault-injecting AWS proxy (for an
`AccessDenied` as an IAM policy not yet granted gives), the CLI as a subprocess.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.cli.test_cli import asg_policy, autoscaler, per_instance
from tests.support.aws import AwsProxy
from tests.support.prometheus import Metrics

pytestmark = pytest.mark.integration

TARGET_VALUE = "  - name: p95\n    query: '{q}'\n    strategy: target-value\n    target: 0.25\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "policies"
    path.mkdir()
    return path


@pytest.fixture
def env(aws_proxy: AwsProxy, prometheus: Any) -> dict[str, str]:
    return {**aws_proxy.env, "AUTOSCALER_PROMETHEUS_URL": prometheus.url}


def test_plan_shows_every_check_of_a_target_it_may_not_read(
    folder: Path,
    env: dict[str, str],
    aws_proxy: AwsProxy,
    metrics: Metrics,
    make_asg: Callable[..., str],
) -> None:
    asg = make_asg(desired=2)
    load, latency = metrics.push("load", 73), metrics.push("latency", 0.5)
    checks = per_instance(f"sum({load})") + TARGET_VALUE.format(q=latency)
    (folder / "web.yaml").write_text(asg_policy("web", asg, checks))
    message = "User is not authorized to perform: autoscaling:DescribeAutoScalingGroups"
    aws_proxy.fail_next("DescribeAutoScalingGroups", 403, "AccessDenied", message, times=5)

    result = autoscaler("plan", str(folder), "-o", "json", env=env)

    assert result.returncode == 3, result.stderr
    (plan,) = json.loads(result.stdout)
    assert (plan["current"], plan["desired"], plan["action"]) == (None, None, "hold")
    assert "unreadable" in plan["error"] and "DescribeAutoScalingGroups" in plan["error"]
    assert plan["reasons"][0] == plan["error"]
    by_name = {c["name"]: c for c in plan["checks"]}
    assert (by_name["load"]["value"], by_name["load"]["desired"]) == (73.0, 8)
    assert by_name["load"]["error"] is None
    assert (by_name["p95"]["value"], by_name["p95"]["desired"]) == (0.5, None)
    assert "needs the current count" in by_name["p95"]["error"]
    assert f"warning: policy web not evaluated: {plan['error']}" in result.stderr

    table = autoscaler("plan", str(folder), env={**env})
    assert "current ? -> desired ?  HOLD" in table.stdout
    assert "load  = 73 -> 8" in table.stdout


def test_run_still_queries_nothing_and_scales_nothing_without_a_readable_target(
    folder: Path,
    env: dict[str, str],
    aws_proxy: AwsProxy,
    metrics: Metrics,
    make_asg: Callable[..., str],
    desired_capacity: Callable[[str], int],
    tmp_path: Path,
) -> None:
    asg = make_asg(desired=2)
    load = metrics.push("load", 73)
    (folder / "web.yaml").write_text(asg_policy("web", asg, per_instance(f"sum({load})")))
    aws_proxy.fail_next("DescribeAutoScalingGroups", 403, "AccessDenied", "no", times=5)
    state = str(tmp_path / "s.db")
    result = autoscaler("run", str(folder), "--once", "--state", state, env=env)
    assert result.returncode == 3
    assert "action=hold" in result.stderr and "from=None to=None" in result.stderr
    assert desired_capacity(asg) == 2
    assert "SetDesiredCapacity" not in aws_proxy.requests


# --- exit codes ---------------------------------------------------------------------------


def _plan(folder: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = autoscaler("plan", str(folder), *args, env=env)
    return result.returncode, result.stdout, result.stderr


def test_detailed_exitcode_is_0_when_nothing_would_change(
    folder: Path, env: dict[str, str], metrics: Metrics, make_asg: Callable[..., str]
) -> None:
    asg = make_asg(desired=2)
    load = metrics.push("load", 15)  # 15 / 10 per instance -> 2, as now
    (folder / "web.yaml").write_text(asg_policy("web", asg, per_instance(f"sum({load})")))
    code, out, err = _plan(folder, env, "--detailed-exitcode")
    assert code == 0, out + err
    assert out.rstrip().endswith("0 up, 0 down, 1 unchanged, 0 held")


def test_detailed_exitcode_is_2_when_some_policy_would_scale(
    folder: Path, env: dict[str, str], metrics: Metrics, make_asg: Callable[..., str]
) -> None:
    up, same = make_asg(desired=2), make_asg(desired=2)
    load, flat = metrics.push("load", 73), metrics.push("flat", 15)
    (folder / "up.yaml").write_text(asg_policy("up", up, per_instance(f"sum({load})")))
    (folder / "same.yaml").write_text(asg_policy("same", same, per_instance(f"sum({flat})")))
    code, out, err = _plan(folder, env, "--detailed-exitcode")
    assert code == 2, out + err
    assert out.rstrip().endswith("1 up, 0 down, 1 unchanged, 0 held")
    code, _, _ = _plan(folder, env)
    assert code == 0  # without the flag, a plan that would scale is a success


def test_a_failed_check_exits_3_with_the_flag_and_is_named_without_it(
    folder: Path, env: dict[str, str], metrics: Metrics, make_asg: Callable[..., str]
) -> None:
    asg = make_asg(desired=2)
    load = metrics.push("load", 73)
    checks = per_instance(f"sum({load})") + per_instance(metrics.name("absent")).replace(
        "name: load", "name: queue"
    )
    (folder / "web.yaml").write_text(asg_policy("web", asg, checks))

    code, out, err = _plan(folder, env)
    assert code == 0  # documented: the policy was evaluated; its failed check holds
    assert "warning: policy web: check queue failed: " in err and "no series" in err
    assert out.rstrip().endswith("1 up, 0 down, 0 unchanged, 0 held; 1 check failed")

    code, out, err = _plan(folder, env, "--detailed-exitcode")
    assert code == 3, out + err


def test_detailed_exitcode_is_1_for_any_invalid_input(
    folder: Path, env: dict[str, str], metrics: Metrics, make_asg: Callable[..., str]
) -> None:
    asg = make_asg(desired=2)
    load = metrics.push("load", 73)
    (folder / "web.yaml").write_text(asg_policy("web", asg, per_instance(f"sum({load})")))
    (folder / "bad.yaml").write_text("name: bad\nmin: 1\n")
    assert _plan(folder, env, "--detailed-exitcode")[0] == 1  # invalid policy file
    (folder / "bad.yaml").unlink()
    assert _plan(folder, env, "--detailed-exitcode", "--no-such-flag")[0] == 1  # usage
    assert _plan(folder, env, "--no-such-flag")[0] == 2  # argparse's code without it
    bad_header = {**env, "AUTOSCALER_PROMETHEUS_HEADERS": "no colon"}
    assert _plan(folder, bad_header, "--detailed-exitcode")[0] == 1  # settings (else 4)
    assert _plan(folder, bad_header)[0] == 4


# --- output formats -----------------------------------------------------------------------


def test_yaml_output_is_the_json_document(
    folder: Path, env: dict[str, str], metrics: Metrics, make_asg: Callable[..., str]
) -> None:
    asg = make_asg(desired=2)
    load = metrics.push("load", 73)
    (folder / "web.yaml").write_text(asg_policy("web", asg, per_instance(f"sum({load})")))
    before = datetime.now(UTC)
    as_json = json.loads(_plan(folder, env, "-o", "json")[1])
    as_yaml = yaml.safe_load(_plan(folder, env, "--output", "yaml")[1])
    # Two runs, two decision times, each the run's own (UTC, a string in both documents).
    times = [datetime.fromisoformat(doc[0].pop("time")) for doc in (as_json, as_yaml)]
    assert before <= times[0] <= times[1] <= datetime.now(UTC)
    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert as_yaml == as_json
    assert as_yaml[0]["reasons"] == ["load: 73 / 10 per instance → 8"]


def test_wide_output_is_a_row_per_policy_with_each_checks_value(
    folder: Path, env: dict[str, str], metrics: Metrics, make_asg: Callable[..., str]
) -> None:
    asg = make_asg(desired=2)
    load, latency = metrics.push("load", 73), metrics.push("latency", 0.5)
    checks = per_instance(f"sum({load})") + TARGET_VALUE.format(q=latency)
    (folder / "web.yaml").write_text(asg_policy("web", asg, checks))
    code, out, _ = _plan(folder, env, "-o", "wide")
    assert code == 0
    header, row, summary = out.rstrip("\n").split("\n")
    assert header.split() == [
        "POLICY", "TARGET", "CURRENT", "DESIRED", "ACTION", "CHECKS", "REASON"
    ]  # fmt: skip
    assert row.startswith(f"web     aws-asg:{asg}@eu-west-3  2        8        up ")
    assert "load=73→8, p95=0.5→4" in row
    assert summary == "1 up, 0 down, 0 unchanged, 0 held"


@pytest.mark.parametrize(
    ("encoding", "arrow"), [("utf-8", "→"), ("latin-1", "\\u2192")], ids=["utf-8", "latin-1"]
)
def test_plan_prints_its_text_as_is_and_never_fails_on_a_narrow_stdout(
    tmp_path: Path, encoding: str, arrow: str
) -> None:
    # `plan` crashed with UnicodeEncodeError on a Latin-1 stdout (a reason's `→`); JSON
    # wrote `\u2192` where the README shows `→`.
    policy = tmp_path / "web.yaml"
    policy.write_text(
        "name: web\ntarget: {type: nomad, job: web, group: web}\nmin: 1\nmax: 3\n"
        "checks: [{name: c, strategy: fixed, count: 2}]\n"
    )
    env = {"NOMAD_ADDR": "http://127.0.0.1:9", "PYTHONIOENCODING": encoding}
    for output in ("table", "json"):
        result = autoscaler("plan", str(policy), "--nomad-timeout", "0.1", "-o", output, env=env)
        assert result.returncode == 3, result.stderr  # not evaluated: Nomad unreachable
        assert "Traceback" not in result.stderr
        assert f"c: fixed {arrow} 2" in result.stdout
    (entry,) = json.loads(result.stdout)  # escaped or not, the same JSON
    assert "c: fixed → 2" in entry["reasons"]
