"""The `autoscaler` command end to end: real Prometheus, moto ASGs, the Nomad API stand-in.

Every test runs the CLI as a subprocess, exactly as a user would, and checks what it
printed, its exit code, and what happened to the target.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from autoscaler.adapters.state.pg import PostgresSettings
from autoscaler.adapters.state.postgres import PostgresStateStore
from tests.support.aws import MotoServer
from tests.support.nomad_api import NomadApiStandIn
from tests.support.postgres import PASSWORD, Database
from tests.support.prometheus import Metrics, Sample
from tests.support.service import FakePrometheus

pytestmark = pytest.mark.integration


def autoscaler(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m autoscaler ARGS` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def asg_policy(name: str, asg: str, checks: str, **fields: Any) -> str:
    """A policy file on an ASG with short timings, `checks` being its YAML list."""
    minimum = fields.pop("min", 1)
    extra = "".join(f"{key}: {value}\n" for key, value in fields.items())
    return (
        f"name: {name}\n"
        f"target: {{type: aws-asg, asg: {asg}, region: eu-west-3}}\n"
        f"min: {minimum}\nmax: 10\ninterval: 1s\n"
        "cooldown: {up: 1h, down: 1h}\n"
        "stabilization: {up: 0s, down: 0s}\n"
        f"{extra}"
        f"checks:\n{checks}"
    )


def per_instance(query: str, target: float = 10) -> str:
    return (
        f"  - name: load\n    query: '{query}'\n    strategy: per-instance\n    target: {target}\n"
    )


class PolicyDir(Protocol):
    """The `policy_dir` fixture: writes `text` as `file` in the folder, returns the folder."""

    def __call__(self, text: str, file: str = "policy.yaml") -> Path: ...


@pytest.fixture
def policy_dir(tmp_path: Path) -> PolicyDir:
    """Write one policy file into a fresh folder; returns the folder."""
    folder = tmp_path / "policies"
    folder.mkdir()

    def write(text: str, file: str = "policy.yaml") -> Path:
        (folder / file).write_text(text)
        return folder

    return write


@pytest.fixture
def env(moto_server: MotoServer, prometheus: Any) -> dict[str, str]:
    return {**moto_server.env, "AUTOSCALER_PROMETHEUS_URL": prometheus.url}


def plan_json(folder: Path, env: Mapping[str, str], *extra: str) -> tuple[int, list[Any]]:
    result = autoscaler("plan", str(folder), "--output", "json", *extra, env=env)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_validate_accepts_the_shipped_examples() -> None:
    result = autoscaler("validate", "policies")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "policies valid" in result.stdout


def test_validate_prints_file_line_field_and_exits_1(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(
        "name: web\ntarget: {type: aws-asg, asg: web}\nmin: 1\nmax: 2\n"
        "checks:\n  - name: a\n    strategy: fixed\n    count: 3\n    colour: red\n"
    )
    inverted = tmp_path / "inverted.yaml"
    inverted.write_text(
        "name: api\ntarget: {type: aws-asg, asg: api}\nmin: 5\nmax: 2\n"
        "checks:\n  - name: a\n    strategy: fixed\n    count: 3\n"
    )
    result = autoscaler("validate", str(tmp_path))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith(f"{unknown}:9: checks[0].colour: unknown key") for line in lines)
    assert any(line.startswith(f"{inverted}:3: min:") for line in lines), lines


def test_plan_shows_the_desired_count_without_scaling(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    make_asg: Callable[..., str],
    desired_capacity: Callable[[str], int],
) -> None:
    asg = make_asg(desired=2)
    metric = metrics.push("conversations", 73)
    folder = policy_dir(asg_policy("web", asg, per_instance(f"sum({metric})")))

    code, plans = plan_json(folder, env)

    assert code == 0
    (plan,) = plans
    assert {
        "policy",
        "target",
        "current",
        "desired",
        "action",
        "dry_run",
        "reasons",
        "checks",
    } <= set(plan)
    assert (plan["policy"], plan["current"], plan["desired"], plan["action"]) == ("web", 2, 8, "up")
    assert plan["checks"] == [
        {
            "name": "load",
            "query": f"sum({metric})",
            "value": 73.0,
            "desired": 8,
            "error": None,
            "forecast": None,  # extensions: a check without forecast or anomaly guard
            "anomaly": None,
        }
    ]
    assert desired_capacity(asg) == 2  # plan never scales


def test_plan_table_names_policy_target_counts_and_reasons(
    policy_dir: PolicyDir, env: dict[str, str], metrics: Metrics, asg: str
) -> None:
    metric = metrics.push("conversations", 73)
    folder = policy_dir(asg_policy("web", asg, per_instance(f"sum({metric})")))
    result = autoscaler("plan", str(folder), env=env)
    assert result.returncode == 0, result.stderr
    assert f"web  aws-asg:{asg}@eu-west-3  current 2 -> desired 8  UP" in result.stdout
    assert "load: 73 / 10 per instance → 8" in result.stdout


def test_run_once_moves_the_group(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    asg: str,
    desired_capacity: Callable[[str], int],
    tmp_path: Path,
) -> None:
    metric = metrics.push("conversations", 55)
    folder = policy_dir(asg_policy("web", asg, per_instance(f"sum({metric})")))
    result = autoscaler("run", str(folder), "--once", "--state", str(tmp_path / "s.db"), env=env)
    assert result.returncode == 0, result.stderr
    assert desired_capacity(asg) == 6
    assert "policy=web" in result.stderr and "action=up" in result.stderr


def test_run_once_dry_run_decides_but_does_not_scale(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    asg: str,
    desired_capacity: Callable[[str], int],
    tmp_path: Path,
) -> None:
    metric = metrics.push("conversations", 55)
    folder = policy_dir(asg_policy("web", asg, per_instance(f"sum({metric})")))
    state = str(tmp_path / "s.db")
    result = autoscaler("run", str(folder), "--once", "--dry-run", "--state", state, env=env)
    assert result.returncode == 0, result.stderr
    assert "action=up dry_run=true" in result.stderr
    assert desired_capacity(asg) == 2


def test_policy_dry_run_field_keeps_the_group_untouched(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    asg: str,
    desired_capacity: Callable[[str], int],
    tmp_path: Path,
) -> None:
    metric = metrics.push("conversations", 55)
    text = asg_policy("web", asg, per_instance(f"sum({metric})"), dry_run="true")
    folder = policy_dir(text)
    result = autoscaler("run", str(folder), "--once", "--state", str(tmp_path / "s"), env=env)
    assert result.returncode == 0, result.stderr
    assert desired_capacity(asg) == 2


@pytest.mark.parametrize(
    ("samples", "expected_error"),
    [
        pytest.param([], "no series", id="empty"),
        pytest.param([Sample("load", float("nan"))], "NaN", id="nan"),
        pytest.param(
            [Sample("load", 1, {"az": "a"}), Sample("load", 2, {"az": "b"})],
            "2 series",
            id="several-series",
        ),
    ],
)
def test_unusable_data_holds_with_a_clear_reason_and_never_scales_in(
    samples: list[Sample],
    expected_error: str,
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    make_asg: Callable[..., str],
    desired_capacity: Callable[[str], int],
    tmp_path: Path,
) -> None:
    asg = make_asg(desired=5)
    metrics.push_many(samples)
    folder = policy_dir(asg_policy("web", asg, per_instance(metrics.name("load"))))

    code, (plan,) = plan_json(folder, env)
    assert code == 0  # evaluated: the check failed, the policy held
    assert plan["action"] == "hold" and plan["desired"] == 5
    assert expected_error in plan["checks"][0]["error"]
    assert any("no usable data" in r for r in plan["reasons"]), plan["reasons"]

    result = autoscaler("run", str(folder), "--once", "--state", str(tmp_path / "s"), env=env)
    assert result.returncode == 0, result.stderr
    assert desired_capacity(asg) == 5


def test_a_string_answer_to_a_vector_query_holds_and_never_scales_in(
    policy_dir: PolicyDir,
    moto_server: MotoServer,
    fake_prometheus: FakePrometheus,
    make_asg: Callable[..., str],
    desired_capacity: Callable[[str], int],
    tmp_path: Path,
) -> None:
    # A proxy answered `{"resultType":"string","result":[t,"12"]}`: read as 12 with a target
    # of 6 per instance, the group went 5 -> 2.
    asg = make_asg(desired=5)
    query = "sum(load)"
    fake_prometheus.bodies[query] = {
        "status": "success",
        "data": {"resultType": "string", "result": [time.time(), "12"]},
    }
    folder = policy_dir(asg_policy("web", asg, per_instance(query, target=6)))
    env = {**moto_server.env, "AUTOSCALER_PROMETHEUS_URL": fake_prometheus.url}

    code, (plan,) = plan_json(folder, env)
    assert code == 0  # evaluated: the check failed, the policy held
    assert (plan["action"], plan["current"], plan["desired"]) == ("hold", 5, 5)
    assert plan["checks"][0]["value"] is None
    assert "string result where the expression gives a vector" in plan["checks"][0]["error"]

    result = autoscaler("run", str(folder), "--once", "--state", str(tmp_path / "s"), env=env)
    assert result.returncode == 0, result.stderr
    assert "action=hold" in result.stderr
    assert desired_capacity(asg) == 5


def test_prometheus_down_holds_reports_and_plan_exits_3(
    policy_dir: PolicyDir,
    moto_server: MotoServer,
    dead_prometheus_url: str,
    make_asg: Callable[..., str],
    desired_capacity: Callable[[str], int],
    tmp_path: Path,
) -> None:
    asg = make_asg(desired=5)
    folder = policy_dir(asg_policy("web", asg, per_instance("sum(anything)")))
    env = {**moto_server.env, "AUTOSCALER_PROMETHEUS_URL": dead_prometheus_url}

    code, (plan,) = plan_json(folder, env, "--query-timeout", "0.3")
    assert code == 3
    assert plan["action"] == "hold"
    assert "unreachable" in (plan["error"] or "")

    table = autoscaler("plan", str(folder), "--query-timeout", "0.3", env=env)
    assert table.returncode == 3 and "not evaluated" in table.stdout

    state = str(tmp_path / "s")
    result = autoscaler(
        "run", str(folder), "--once", "--state", state, "--query-timeout", "0.3", env=env
    )
    assert result.returncode == 3
    assert desired_capacity(asg) == 5


def test_plan_reports_other_policies_when_one_cannot_be_evaluated(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    asg: str,
) -> None:
    metric = metrics.push("conversations", 30)
    policy_dir(asg_policy("good", asg, per_instance(f"sum({metric})")), "good.yaml")
    folder = policy_dir(
        asg_policy("missing", "no-such-group", per_instance("vector(1)")), "bad.yaml"
    )
    code, plans = plan_json(folder, env)
    assert code == 3
    by_name = {p["policy"]: p for p in plans}
    assert by_name["good"]["desired"] == 3
    assert by_name["missing"]["action"] == "hold"
    assert "not found" in by_name["missing"]["error"]


def test_cooldown_survives_a_restart(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    asg: str,
    desired_capacity: Callable[[str], int],
    tmp_path: Path,
) -> None:
    metric = metrics.push("conversations", 40)
    folder = policy_dir(asg_policy("web", asg, per_instance(f"sum({metric})")))
    state = str(tmp_path / "state.db")
    first = autoscaler("run", str(folder), "--once", "--state", state, env=env)
    assert first.returncode == 0, first.stderr
    assert desired_capacity(asg) == 4

    # Less load (a rising per-instance need may overtake the cooldown up, issue 11).
    metrics.push("conversations", 10)
    second = autoscaler("run", str(folder), "--once", "--state", state, env=env)
    assert second.returncode == 0, second.stderr
    assert desired_capacity(asg) == 4
    assert "cooldown down" in second.stderr and "action=hold" in second.stderr

    _, (plan,) = plan_json(folder, env, "--state", state)
    assert plan["action"] == "hold" and plan["desired"] == 1


def test_cooldown_survives_a_restart_with_the_state_in_postgresql(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    asg: str,
    desired_capacity: Callable[[str], int],
    postgres_db: Database,
) -> None:
    metric = metrics.push("conversations", 40)
    folder = policy_dir(asg_policy("web", asg, per_instance(f"sum({metric})")))
    pg_env = {**env, "PGPASSWORD": PASSWORD}  # libpq's own variable
    first = autoscaler("run", str(folder), "--once", "--state", postgres_db.dsn, env=pg_env)
    assert first.returncode == 0, first.stderr
    assert desired_capacity(asg) == 4

    metrics.push("conversations", 10)  # a scale-in: a rising need may overtake cooldown up
    second = autoscaler("run", str(folder), "--once", "--state", postgres_db.dsn, env=pg_env)
    assert second.returncode == 0, second.stderr
    assert desired_capacity(asg) == 4
    assert "cooldown down" in second.stderr and "action=hold" in second.stderr
    assert PASSWORD not in first.stderr + second.stderr

    _, (plan,) = plan_json(folder, pg_env, "--state", postgres_db.dsn)
    assert plan["action"] == "hold" and plan["desired"] == 1
    refused = autoscaler("run", str(folder), "--once", "--state", postgres_db.dsn, env=env)
    assert refused.returncode == 4
    assert "cannot connect to state database" in refused.stderr
    assert f"127.0.0.1:{postgres_db.server.port}/{postgres_db.name}" in refused.stderr


def test_plan_and_run_refuse_a_postgresql_state_written_by_a_newer_controller(
    policy_dir: PolicyDir, postgres_db: Database
) -> None:
    folder = policy_dir(asg_policy("web", "web-asg", per_instance("sum(up)")))
    PostgresStateStore(PostgresSettings(dsn=postgres_db.dsn, password=PASSWORD)).close()
    postgres_db.query("INSERT INTO autoscaler_schema (version) VALUES (99) RETURNING 1")
    env = {"PGPASSWORD": PASSWORD, "AUTOSCALER_PROMETHEUS_URL": "http://127.0.0.1:9"}
    planned = autoscaler("plan", str(folder), "--state", postgres_db.dsn, env=env)
    ran = autoscaler("run", str(folder), "--once", "--state", postgres_db.dsn, env=env)
    refused = "has schema version 99, written by a newer autoscaler (this one knows up to"
    assert planned.returncode == ran.returncode == 4, planned.stderr
    assert refused in planned.stderr
    assert planned.stderr.strip().splitlines()[-1] == ran.stderr.strip().splitlines()[-1]


def test_run_loop_stops_cleanly_on_sigterm_and_sigint(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    asg: str,
    tmp_path: Path,
) -> None:
    metric = metrics.push("conversations", 20)
    folder = policy_dir(asg_policy("web", asg, per_instance(f"sum({metric})")))
    for number, sig in enumerate((signal.SIGTERM, signal.SIGINT)):
        proc = subprocess.Popen(
            [sys.executable, "-m", "autoscaler", "run", str(folder), "--listen", "",
             "--state", str(tmp_path / f"s{number}.db")],
            env={**os.environ, **env},
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        seen = ""
        while "policy=web" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert "policy=web" in seen, seen
        proc.send_signal(sig)
        started = time.monotonic()
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 10


def test_python_dash_m_and_the_console_script_agree() -> None:
    script = Path(sys.executable).with_name("autoscaler")
    a = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    b = autoscaler("--version")
    assert a.stdout == b.stdout and a.stdout.startswith("autoscaler ")


def test_schema_command_prints_a_json_schema() -> None:
    result = autoscaler("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema == json.loads(Path("policy.schema.json").read_text())  # what editors use
    assert {"name", "target", "min", "max", "checks"} <= set(
        schema["$defs"]["PolicyModel"]["properties"]
    )


def test_pushed_p95_scales_a_nomad_group_through_run_once(
    policy_dir: PolicyDir,
    prometheus: Any,
    metrics: Metrics,
    nomad_api: NomadApiStandIn,
    tmp_path: Path,
) -> None:
    nomad_api.register_job("chat", {"api": 3}, namespace="apps")
    bucket = metrics.name("latency_bucket")
    # A p95 of 0.5 s against a 0.25 s target doubles the group: 3 → 6.
    metrics.push_many(
        Sample("latency_bucket", count, {"le": le})
        for le, count in (("0.25", 10), ("0.5", 100), ("+Inf", 100))
    )
    query = f"histogram_quantile(0.95, sum by (le) ({bucket}))"
    folder = policy_dir(
        "name: chat-api\n"
        "target: {type: nomad, job: chat, group: api, namespace: apps}\n"
        "min: 0\nmax: 20\ninterval: 1s\n"
        "checks:\n"
        f"  - name: p95\n    query: '{query}'\n    strategy: target-value\n    target: 0.25\n"
    )
    env = {**nomad_api.env, "AUTOSCALER_PROMETHEUS_URL": prometheus.url}
    result = autoscaler("run", str(folder), "--once", "--state", str(tmp_path / "s"), env=env)
    assert result.returncode == 0, result.stderr
    assert nomad_api.group_count("chat", "api", namespace="apps") == 6
    (event, *_) = nomad_api.scale_events("chat", "api", namespace="apps")
    assert "chat-api" in event["Message"]


def test_run_once_never_asks_for_more_than_the_groups_own_max_size(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    make_asg: Callable[..., str],
    desired_capacity: Callable[[str], int],
    tmp_path: Path,
) -> None:
    # moto does not enforce MaxSize, so only our own clamp keeps the group at 5.
    asg = make_asg(desired=2, max_size=5)
    metric = metrics.push("conversations", 80)
    folder = policy_dir(asg_policy("web", asg, per_instance(f"sum({metric})")))
    result = autoscaler("run", str(folder), "--once", "--state", str(tmp_path / "s"), env=env)
    assert result.returncode == 0, result.stderr
    assert desired_capacity(asg) == 5
    assert "target max size 5: 8 → 5" in result.stderr


def test_bad_aws_configuration_holds_that_policy_and_still_plans_the_others(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", {"api": 2})
    metric = metrics.push("conversations", 30)
    policy_dir(asg_policy("web", "web", per_instance(f"sum({metric})")), "web.yaml")
    folder = policy_dir(
        "name: chat\ntarget: {type: nomad, job: chat, group: api}\nmin: 0\nmax: 9\n"
        f"checks:\n{per_instance(f'sum({metric})')}",
        "chat.yaml",
    )
    code, plans = plan_json(folder, {**env, **nomad_api.env, "AWS_PROFILE": "no-such-profile"})
    assert code == 3
    by_name = {p["policy"]: p for p in plans}
    assert "no-such-profile" in by_name["web"]["error"]
    assert by_name["web"]["action"] == "hold"
    assert by_name["chat"]["desired"] == 3
    assert by_name["chat"]["error"] is None


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        pytest.param(
            ["--prometheus-url", "ftp://x"],
            {},
            "--prometheus-url: url must be http(s)",
            id="bad-url",
        ),
        pytest.param(  # the message names the setting the user gave, here the variable
            [],
            {"AUTOSCALER_PROMETHEUS_URL": "http://prom:9090/?tenant=a"},
            "error: AUTOSCALER_PROMETHEUS_URL: url must not carry a query string",
            id="url-query-string-env",
        ),
        pytest.param(
            ["--prometheus-token-file", "/nonexistent/token"], {}, "cannot read", id="token-file"
        ),
        pytest.param([], {"NOMAD_SKIP_VERIFY": "maybe"}, "NOMAD_SKIP_VERIFY", id="nomad-env"),
    ],
)
def test_bad_connection_settings_are_one_clear_line_and_exit_4(
    args: list[str], extra_env: dict[str, str], message: str, tmp_path: Path
) -> None:
    for command in (
        ["plan", "policies"],
        ["run", "policies", "--once", "--state", str(tmp_path / "s")],
    ):
        result = autoscaler(*command, *args, env=extra_env)
        assert result.returncode == 4, result.stderr
        assert result.stderr.startswith("error: "), result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        # The message names the variable the user set, not a flag they never typed.
        pytest.param(
            "AUTOSCALER_WORKERS",
            "abc",
            "error: AUTOSCALER_WORKERS: expected an integer, got text 'abc'",
            id="workers",
        ),
        pytest.param(
            "AUTOSCALER_QUERY_TIMEOUT",
            "x",
            "AUTOSCALER_QUERY_TIMEOUT: expected a number",
            id="timeout",
        ),
        pytest.param(
            "AUTOSCALER_RELOAD_INTERVAL",
            "x",
            "AUTOSCALER_RELOAD_INTERVAL: expected a number",
            id="reload",
        ),
        pytest.param(
            "AUTOSCALER_LOG_LEVEL",
            "bogus",
            "AUTOSCALER_LOG_LEVEL: expected one of debug",
            id="log",
        ),
        pytest.param(
            "AUTOSCALER_INSECURE_NO_AUTH",
            "maybe",
            "AUTOSCALER_INSECURE_NO_AUTH: expected",
            id="boolean",
        ),
    ],
)
def test_a_bad_environment_value_is_a_usage_error_not_a_traceback(
    variable: str, value: str, message: str, tmp_path: Path
) -> None:
    result = autoscaler("run", "policies", "--once", "--state", str(tmp_path / "s"),
                        env={variable: value})  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert "argument --" not in result.stderr  # argparse's wording names the flag
    assert "Traceback" not in result.stderr


def test_run_refuses_a_policy_path_that_does_not_exist(tmp_path: Path) -> None:
    result = autoscaler("run", str(tmp_path / "typo"), "--state", str(tmp_path / "s"))
    assert result.returncode == 4
    assert "no such policy file or folder" in result.stderr


def test_plan_table_states_an_unreadable_target_once(
    policy_dir: PolicyDir, env: dict[str, str]
) -> None:
    folder = policy_dir(asg_policy("web", "no-such-group", per_instance("vector(1)")))
    result = autoscaler("plan", str(folder), env=env)
    assert result.returncode == 3
    assert result.stdout.count("not found") == 1, result.stdout


def test_history_flags_bound_the_recorded_decisions(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    asg: str,
    tmp_path: Path,
) -> None:
    metric = metrics.push("conversations", 20)
    folder = policy_dir(asg_policy("web", asg, per_instance(f"sum({metric})")))
    state = tmp_path / "s.db"
    for _ in range(3):
        result = autoscaler("run", str(folder), "--once", "--state", str(state),
                            "--history-max", "2", env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT count(*) FROM decisions").fetchone() == (2,)


def test_plan_shows_a_forecast_learned_from_the_history_prometheus_holds(
    policy_dir: PolicyDir,
    env: dict[str, str],
    metrics: Metrics,
    make_asg: Callable[..., str],
) -> None:
    # Almost three days of a daily cycle, one sample a minute (remote write accepts 3 days).
    now = time.time()

    def daily(t: float) -> float:
        return 100 + 50 * math.sin(2 * math.pi * t / 86400)

    first = now - 2.9 * 86400
    minutes = [first + 60 * k for k in range(int((now - first) // 60))]
    name = metrics.name("requests")
    metrics.server.push_many(Sample(name, daily(t), {}, t) for t in minutes)
    asg = make_asg(desired=2)
    checks = per_instance(f"sum({name})") + "    forecast: {}\n"
    folder = policy_dir(asg_policy("web", asg, checks, provisioning="2m"))

    code, plans = plan_json(folder, env)

    assert code == 0
    (check,) = plans[0]["checks"]
    forecast = check["forecast"]
    assert forecast["lead_seconds"] == 1 + 120  # interval 1s + provisioning 2m
    assert forecast["season_seconds"] == 86400
    assert forecast["error"] < 0.05
    assert forecast["value"] == pytest.approx(daily(now + 121), rel=0.05)
    table = autoscaler("plan", str(folder), env=env).stdout
    assert "forecast " in table
    assert " in 2m1s (recent error " in table
    wide = autoscaler("plan", str(folder), "-o", "wide", env=env).stdout
    assert "(forecast " in wide
    assert " in 2m1s (recent error " in wide
    documents = yaml.safe_load(autoscaler("plan", str(folder), "-o", "yaml", env=env).stdout)
    assert documents[0]["checks"][0]["forecast"]["season_seconds"] == 86400
