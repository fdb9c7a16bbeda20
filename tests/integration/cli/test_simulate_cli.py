"""`autoscaler simulate` end to end, as a subprocess: table, JSON, plots, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

KEYS = [
    "name",
    "instance_hours",
    "under_provisioned_pct",
    "accuracy_u",
    "accuracy_o",
    "timeshare_u",
    "timeshare_o",
    "jitter_per_hour",
    "actions",
]


def autoscaler(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        check=False,
    )


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """Two hours at 1-minute rows: quiet, a burst, quiet again."""
    rows = ["timestamp_seconds,requests_per_second,host"]
    for minute in range(120):
        rate = 200.0 if 40 <= minute < 70 else 40.0 + minute % 7
        rows.append(f"{minute * 60},{rate},web-1")
    path = tmp_path / "burst.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_table_shows_a_summary_and_every_controller(trace: Path, tmp_path: Path) -> None:
    result = autoscaler("simulate", "--trace", str(trace), "--capacity", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"simulate {trace}: 0.08 days in 480 ticks of 15 s")
    assert lines[1].startswith("recommended: under capacity ")
    assert "(hpa " in lines[1] and "aws-tt " in lines[1]
    header = next(line for line in lines if line.startswith("controller"))
    assert header.split()[:3] == ["controller", "instance-h", "under"]
    names = [line.split()[0] for line in lines[lines.index(header) + 1 :]]
    assert names == ["recommended", "hpa", "aws-tt", "static", "oracle"]


def test_the_table_shows_a_trace_files_control_characters_escaped(
    trace: Path, tmp_path: Path
) -> None:
    named = trace.rename(tmp_path / "burst\x1b[2J\nforged.csv")
    result = autoscaler("simulate", "--trace", str(named), "--capacity", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert result.stdout.startswith(f"simulate {tmp_path}/burst\\x1b[2J\\nforged.csv: ")


def test_json_is_the_documented_contract(trace: Path, tmp_path: Path) -> None:
    result = autoscaler(
        "simulate", "--trace", str(trace), "--capacity", "10", "-o", "json",
        "--compare", "hpa,oracle", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert list(doc) == ["trace", "capacity", "controllers"]
    assert doc["trace"] == str(trace) and doc["capacity"] == 10.0
    assert [c["name"] for c in doc["controllers"]] == ["recommended", "hpa", "oracle"]
    assert all(list(c) == KEYS for c in doc["controllers"])
    oracle = doc["controllers"][2]
    assert oracle["under_provisioned_pct"] == 0 and oracle["accuracy_u"] == 0
    assert "recommended: under capacity" in result.stderr  # the summary, off stdout


def test_a_policy_file_with_a_signal_mapping(trace: Path, tmp_path: Path) -> None:
    policy = tmp_path / "web.yaml"
    policy.write_text(
        "name: web\ntarget: {type: aws-asg, asg: web}\nmin: 2\nmax: 40\ninterval: 30s\n"
        "checks:\n"
        "  - {name: rps, query: 'sum(rate(x[1m]))', strategy: per-instance, target: 7}\n"
        "  - {name: p95, query: 'histogram_quantile(0.95, rate(h[1m]))',"
        " strategy: target-value, target: 0.5}\n"
    )
    result = autoscaler(
        "simulate", str(policy), "--trace", str(trace), "--capacity", "10",
        "--signal", "rps=load", "--signal", "p95=latency_p95", "--compare", "none",
        "-o", "json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (web,) = json.loads(result.stdout)["controllers"]
    assert web["name"] == "web" and web["actions"] > 0


def test_a_policy_with_a_warning_is_simulated_and_its_warning_said(
    trace: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "web.yaml"
    policy.write_text(
        "name: web\ntarget: {type: aws-asg, asg: web}\nmin: 2\nmax: 40\n"
        "fallback: {after: 3, count: 10}\n"
        "checks:\n  - {name: load, query: 'sum(rate(x[1m]))', strategy: per-instance, target: 7}\n"
    )
    result = autoscaler(
        "simulate", str(policy), "--trace", str(trace), "--capacity", "10", "--compare", "none",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{policy}:5: fallback: warning: ignored while on_missing_data is hold" in result.stderr
    assert "web: under capacity" in result.stdout


def test_an_unknown_plot_format_is_said_before_simulating(trace: Path, tmp_path: Path) -> None:
    result = autoscaler(
        "simulate", "--trace", str(trace), "--capacity", "10", "--plot", "run.pdf", cwd=tmp_path
    )
    assert result.returncode == 2  # bad usage, as backtest's (it was 1, a bad input file)
    assert "error: --plot run.pdf: unknown plot format; use a file name ending in" in result.stderr
    assert result.stdout == ""  # nothing simulated, no table


def test_a_folder_given_as_the_policy_file_says_so(trace: Path, tmp_path: Path) -> None:
    result = autoscaler(
        "simulate", str(tmp_path), "--trace", str(trace), "--capacity", "10", cwd=tmp_path
    )
    assert result.returncode == 1
    assert f"error: {tmp_path}: a folder: give one policy file" in result.stderr


def test_a_file_of_templates_only_says_simulate_does_not_expand_them(
    trace: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "fleet.yaml"
    policy.write_text(
        "name: 'svc-{job}-{group}'\n"
        "for_each: {nomad: {meta: {autoscaler.enabled: 'true'}}}\n"
        "target: {type: nomad, job: '{job}', group: '{group}'}\n"
        "min: 1\nmax: 10\n"
        "checks:\n"
        "  - {name: load, query: 'sum by (job) (x)', strategy: per-instance, target: 10}\n"
    )
    result = autoscaler(
        "simulate", str(policy), "--trace", str(trace), "--capacity", "10", cwd=tmp_path
    )
    assert result.returncode == 1
    assert (
        f"error: {policy}: holds only templates (for_each: svc-{{job}}-{{group}}), which "
        "simulate does not expand: copy one with a concrete target"
    ) in result.stderr


def test_plots_html_always_and_png_with_matplotlib(trace: Path, tmp_path: Path) -> None:
    for name in ("run.html", "run.png"):
        result = autoscaler(
            "simulate", "--trace", str(trace), "--capacity", "10", "--plot", name, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert f"plot written to {name}" in result.stderr
        assert "recommended: under capacity" in result.stdout
    assert (tmp_path / "run.html").read_text().startswith("<!doctype html>")
    assert (tmp_path / "run.png").read_bytes().startswith(b"\x89PNG")


def test_bad_inputs_exit_1_with_the_place_and_bad_usage_exits_2(
    trace: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_seconds,requests_per_second\n0,1\n60,lots\n")
    result = autoscaler("simulate", "--trace", str(bad), "--capacity", "10", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{bad}:3: requests_per_second: 'lots' is not a number" in result.stderr

    policy = tmp_path / "broken.yaml"
    policy.write_text("name: web\ntarget: {type: aws-asg, asg: web}\nmin: 5\nmax: 2\nchecks: []\n")
    result = autoscaler(
        "simulate", str(policy), "--trace", str(trace), "--capacity", "10", cwd=tmp_path
    )
    assert result.returncode == 1 and f"{policy}:" in result.stderr

    result = autoscaler(
        "simulate", "--trace", str(trace), "--capacity", "10", "--signal", "load=cpu",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2 and "--signal load=cpu is not one" in result.stderr

    result = autoscaler("simulate", "--trace", str(trace), cwd=tmp_path)
    assert result.returncode == 2 and "--capacity" in result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        pytest.param(
            ["--start-time", "9999-12-31T23:59:00Z"], "leave the calendar", id="start-at-the-end"
        ),
        pytest.param(["--provisioning", "1e20"], "longer than a day", id="provisioning"),
        pytest.param(
            ["--from", "1d", "--to", "12h"], "--from (1d) must be before --to (12h)", id="from-to"
        ),
        pytest.param(
            ["--capacity", "1e-300", "--target-utilization", "1e-300"],
            "is 0 in floating point",
            id="capacity-underflows",
        ),
    ],
)
def test_times_out_of_range_are_bad_usage_not_a_traceback(
    trace: Path, tmp_path: Path, args: list[str], said: str
) -> None:
    result = autoscaler("simulate", "--trace", str(trace), "--capacity", "10", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert said in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("capacity", ["0.00001", "1e11"])
def test_the_recommended_policy_takes_any_capacity(
    trace: Path, tmp_path: Path, capacity: str
) -> None:
    # Its YAML wrote 1e-05 and 7e+10, which YAML reads as text: the policy failed to load.
    result = autoscaler("simulate", "--trace", str(trace), "--capacity", capacity, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "recommended: under capacity" in result.stdout
