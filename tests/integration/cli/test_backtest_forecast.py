"""`autoscaler backtest` with a forecasting policy, against a real Prometheus holding 14 days
of backfilled history (promtool): every day at 08:00 the load climbs from 20 to 100 req/s
in five minutes. Replayed on the fifteenth morning, the forecasting policy learns the ramp
from the two weeks before `--from` (range queries) and scales up before 08:00; the same
policy without a forecast follows the ramp after it has begun. And on noisy data, the
backtest of a forecasting policy makes the changes the production reconciler makes when
driven over the same Prometheus on a live-like clock: its forecast learns the same history."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.adapters.sources import PrometheusSettings, PrometheusSource
from autoscaler.adapters.sources.prometheus_range import RangeSeries
from autoscaler.core.series import SeriesSet
from autoscaler.errors import QueryError
from autoscaler.policy.loader import load_paths
from tests.support.prometheus import PrometheusServer
from tests.support.run_like import run_changes

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


# --- the history the forecast learns from is the history `run` reads ------------------


def noisy_openmetrics() -> str:
    """A sample every 15 s, ±40 % noise: a bucket's average differs from one sample."""
    rng = random.Random(5)
    lines = ["# TYPE fc_rps gauge\n"]
    at = DAY0
    while at < MORNING + timedelta(hours=10):
        value = load_at(at) * rng.uniform(0.6, 1.4)
        lines.append(f'fc_rps{{service="web"}} {value:.3f} {int(at.timestamp())}\n')
        at += timedelta(seconds=15)
    return "".join(lines)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus-noisy"))
    server.backfill(noisy_openmetrics())
    with server:
        yield server


class AtInstant:
    """Prometheus as `run` reads it at the injected instant `now`: instant queries there,
    range queries (the forecast's and the guard's history) through the real adapter."""

    def __init__(self, server: PrometheusServer) -> None:
        self.server = server
        self.now: datetime | None = None
        self.source = PrometheusSource(PrometheusSettings(url=server.url))

    def query(self, promql: str) -> float:
        result = self.server.query(promql, at=self.now)["result"]
        if not result:
            raise QueryError(f"query {promql!r} returned no series")
        return float(result[0]["value"][1])

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        raise NotImplementedError  # the forecasting policy has no grouped query

    def ping(self) -> None:
        return None

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step: timedelta
    ) -> list[RangeSeries]:
        return self.source.query_range(promql, start=start, end=end, step=step)


@pytest.mark.parametrize(
    ("interval", "guard", "offset"),
    [
        pytest.param("5m", False, 0, id="interval-over-two-buckets"),
        pytest.param("15s", True, 0, id="guard-at-a-finer-step"),
        pytest.param("15s", False, 37, id="from-between-buckets"),
    ],
)
def test_the_backtest_of_a_forecasting_policy_scales_as_run_on_the_same_prometheus(
    noisy: PrometheusServer, tmp_path: Path, interval: str, guard: bool, offset: int
) -> None:
    text = policy("ahead", forecast=True).replace("interval: 1m", f"interval: {interval}")
    text = text.replace("cooldown: {up: 0s, down: 5m}", "cooldown: {up: 0s, down: 0s}")
    text = text.replace("stabilization: {up: 0s, down: 5m}", "stabilization: {up: 0s, down: 0s}")
    text += "anomaly: {z: 50}\n" if guard else ""
    (tmp_path / "ahead.yaml").write_text(text)
    start = MORNING + timedelta(hours=7, seconds=offset)
    end = start + timedelta(hours=2)
    window = [f"--from={start:%Y-%m-%dT%H:%M:%SZ}", f"--to={end:%Y-%m-%dT%H:%M:%SZ}"]
    document = backtest(str(tmp_path), *window, "--start-count", "2", "-o", "json", url=noisy.url)
    (replayed,) = document["policies"]
    backtested = [
        (datetime.fromisoformat(c["at"]), c["from"], c["to"]) for c in replayed["changes"]
    ]

    loaded = load_paths([tmp_path / "ahead.yaml"])
    assert not loaded.problems, loaded.problems
    live = run_changes(loaded.policies[0], AtInstant(noisy), start, end, 2)
    assert len(live) > 10  # the noise makes it move: a real comparison
    assert backtested == live
