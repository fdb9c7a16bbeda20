"""`autoscaler backtest` with a forecasting policy, against a real Prometheus holding 14 days
of backfilled history (promtool): every day at 08:00 the load climbs from 20 to 100 req/s
in five minutes. Replayed on the fifteenth morning, the forecasting policy learns the ramp
from the two weeks before `--from` (range queries) and scales up before 08:00; the same
policy without a forecast follows the ramp after it has begun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration

DAY0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
RAMP = timedelta(hours=8)
MORNING = DAY0 + timedelta(days=14)
WINDOW = [
    "--from",
    (MORNING + timedelta(hours=7)).isoformat().replace("+00:00", "Z"),
    "--to",
    (MORNING + timedelta(hours=9)).isoformat().replace("+00:00", "Z"),
]


def load_at(at: datetime) -> float:
    since = at - at.replace(hour=0, minute=0, second=0, microsecond=0) - RAMP
    if since < timedelta(0) or since >= timedelta(hours=10):
        return 20.0
    return 20.0 + 80.0 * min(1.0, since / timedelta(minutes=5))


def openmetrics() -> str:
    lines = ["# TYPE fc_rps gauge\n"]
    minute = DAY0
    while minute < MORNING + timedelta(hours=10):
        lines.append(f'fc_rps{{service="web"}} {load_at(minute)} {int(minute.timestamp())}\n')
        minute += timedelta(minutes=1)
    return "".join(lines)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus-forecast"))
    server.backfill(openmetrics())
    with server:
        yield server


def policy(name: str, *, forecast: bool) -> str:
    return (
        f"name: {name}\n"
        f"target: {{type: aws-asg, asg: {name}}}\n"
        "min: 1\nmax: 20\ninterval: 1m\nprovisioning: 2m\n"
        "cooldown: {up: 0s, down: 5m}\n"
        "stabilization: {up: 0s, down: 5m}\n"
        "checks:\n"
        "  - name: rps\n"
        '    query: sum(fc_rps{service="web"})\n'
        "    strategy: per-instance\n"
        "    target: 10\n" + ("    forecast: {}\n" if forecast else "")
    )


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "ahead.yaml").write_text(policy("ahead", forecast=True))
    (folder / "reactive.yaml").write_text(policy("reactive", forecast=False))
    return folder


def backtest(*args: str, url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler", "backtest", *args, "--prometheus-url", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AUTOSCALER_LOG_LEVEL": "warning"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def test_a_forecasting_policy_scales_up_before_the_daily_ramp(
    history: PrometheusServer, policies: Path
) -> None:
    document = backtest(str(policies), *WINDOW, "--start-count", "2", "-o", "json", url=history.url)
    runs = {p["policy"]: p for p in document["policies"]}
    ramp = MORNING + RAMP
    ahead = [c for c in runs["ahead"]["changes"] if c["to"] > c["from"]]
    reactive = [c for c in runs["reactive"]["changes"] if c["to"] > c["from"]]

    first = datetime.fromisoformat(ahead[0]["at"])
    assert ramp - timedelta(minutes=4) <= first < ramp  # within the 3-minute lead, before 08:00
    assert any("forecast" in r and "acting on it" in r for r in ahead[0]["reasons"])
    reached = min(datetime.fromisoformat(c["at"]) for c in ahead if c["to"] >= 10)
    assert reached <= ramp + timedelta(minutes=2)  # 100 req/s ordered before they arrive
    assert datetime.fromisoformat(reactive[0]["at"]) > ramp  # reactive: only once it began
    assert runs["ahead"]["errors"] == []
