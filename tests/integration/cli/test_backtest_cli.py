"""`autoscaler backtest` end to end, against a real Prometheus holding backfilled history.

History (one sample a minute from 18:00 to midnight, backfilled with promtool): load for 4
instances for two hours, for 8 for one hour, then nothing for 30 minutes (a gap: the data
is missing, not low), then load for 2. The recorded count of the group is in `bt_desired`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.nomad_api import NomadApiStandIn
from tests.support.prometheus import Metrics, PrometheusServer, Sample
from tests.support.prometheus_proxy import serve_prometheus_proxy

pytestmark = pytest.mark.integration

END = datetime(2026, 1, 1, tzinfo=UTC)
START = END - timedelta(hours=6)
WINDOW = ["--from", "2025-12-31T18:00:00Z", "--to", "2026-01-01T00:00:00Z"]


def load_at(minute: int) -> float | None:
    if minute < 120:
        return 35.0
    if minute < 180:
        return 75.0
    if minute < 210:
        return None  # the gap
    return 15.0


def openmetrics() -> str:
    t0 = int(START.timestamp())
    lines = ["# TYPE bt_rps gauge\n"]
    for minute in range(360):
        value = load_at(minute)
        if value is not None:
            lines.append(f'bt_rps{{service="web"}} {value} {t0 + 60 * minute}\n')
    lines += [f'bt_rps{{service="api"}} 25 {t0 + 60 * minute}\n' for minute in range(360)]
    lines.append("# TYPE bt_desired gauge\n")
    for minute in range(360):
        count = 5 if minute < 180 else 9
        lines.append(f'bt_desired{{asg="bt-web"}} {count} {t0 + 60 * minute}\n')
    return "".join(lines)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus-backtest"))
    server.backfill(openmetrics())
    with server:
        yield server


def policy(name: str, asg: str, query: str) -> str:
    return (
        f"name: {name}\n"
        f"target: {{type: aws-asg, asg: {asg}, region: eu-west-3}}\n"
        "min: 1\nmax: 20\ninterval: 1m\n"
        "cooldown: {up: 2m, down: 5m}\n"
        "stabilization: {up: 0s, down: 0s}\n"
        "checks:\n"
        f"  - {{name: rps, query: '{query}', strategy: per-instance, target: 10}}\n"
    )


WEB = 'sum(bt_rps{service="web"})'


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "web.yaml").write_text(policy("web", "bt-web", WEB))
    return folder


def backtest(
    *args: str, url: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", "backtest", *args, "--prometheus-url", url],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "AUTOSCALER_LOG_LEVEL": "info", **(env or {})},
        check=False,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def minute_of(at: str) -> int:
    return (datetime.fromisoformat(at) - START) // timedelta(minutes=1)


def test_backtest_replays_history_and_a_gap_holds_instead_of_scaling_in(
    history: PrometheusServer, policies: Path
) -> None:
    done = backtest(str(policies), *WINDOW, "--start-count", "2", "-o", "json", url=history.url)
    document = as_json(done)
    assert (document["from"], document["to"]) == ("2025-12-31T18:00:00Z", "2026-01-01T00:00:00Z")
    (web,) = document["policies"]
    assert web["evaluations"] == 360 and web["step"] == "1m"
    changes = [(minute_of(c["at"]), c["from"], c["to"]) for c in web["changes"]]
    # Up to 4, up to 8; during the gap nothing; down to 2 only once data says so again.
    assert changes == [(0, 2, 4), (120, 4, 8), (210, 8, 2)]
    assert web["changes"][2]["reasons"] == ["rps: 15 / 10 per instance → 2"]
    assert (web["actions"], web["min_count"], web["max_count"]) == (3, 2, 8)
    assert web["instance_hours"] == pytest.approx((120 * 4 + 90 * 8 + 150 * 2) / 60)
    # The last sample before the gap stays visible for Prometheus' 5-minute lookback.
    failures = web["check_failures"]["rps"]
    assert 180 < minute_of(failures["first_at"]) <= 185
    assert (
        failures["evaluations"]
        == web["no_data"]
        == web["holds"]
        == 210 - minute_of(failures["first_at"])
    )
    assert failures["first_error"].startswith("no data")
    # The terminal gets the summary table on stderr, and no decision log lines, whatever
    # the log level.
    head, columns, *rows = done.stderr.splitlines()
    assert head.startswith("backtest 2025-12-31T18:00:00Z → 2026-01-01T00:00:00Z (6h)")
    assert columns.split() == [
        "policy", "step", "evals", "actions", "inst-hours", "min", "max", "holds", "no-data"
    ]  # fmt: skip
    assert [row.split()[:4] for row in rows] == [["web", "1m", "360", "3"]]


def test_identical_queries_of_several_policies_are_sent_once(
    history: PrometheusServer, policies: Path
) -> None:
    (policies / "copy.yaml").write_text(policy("web-copy", "bt-web-copy", WEB))
    (policies / "api.yaml").write_text(policy("api", "bt-api", 'sum(bt_rps{service="api"})'))
    document = as_json(backtest(str(policies), *WINDOW, "-o", "json", url=history.url))
    assert document["range_queries"] == 2
    by_name = {p["policy"]: p for p in document["policies"]}
    assert by_name["web"]["changes"] == by_name["web-copy"]["changes"]
    assert by_name["api"]["max_count"] == 3


def test_count_query_sets_the_recorded_count_beside_the_simulated_one(
    history: PrometheusServer, policies: Path
) -> None:
    count_query = 'max(bt_desired{asg="$asg"})'
    done = backtest(
        str(policies), *WINDOW, "--count-query", count_query, "-o", "json", url=history.url
    )
    (web,) = as_json(done)["policies"]
    assert web["start_count"] == 5
    assert web["recorded"] == {
        "query": 'max(bt_desired{asg="bt-web"})',
        "instance_hours": pytest.approx((180 * 5 + 180 * 9) / 60),
        "min_count": 5,
        "max_count": 9,
        "changes": 1,
        "missing": 0,
    }
    counts = [(minute_of(c["at"]), c["recorded"], c["simulated"]) for c in web["counts"]]
    assert counts[:3] == [(0, 5, 4), (120, 5, 8), (180, 9, 8)]
    assert counts[-1] == (210, 9, 2)


def test_the_table_summarises_each_policy_and_its_changes_with_reasons(
    history: PrometheusServer, policies: Path
) -> None:
    done = backtest(str(policies), *WINDOW, "--start-count", "2", url=history.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "backtest 2025-12-31T18:00:00Z → 2026-01-01T00:00:00Z (6h), 1 range queries"
    )
    assert lines[2].split() == ["web", "1m", "360", "3", "25.0", "2", "8", "25", "25"]
    assert "  2026-01-01T00:00:00Z" not in done.stdout
    assert "  2025-12-31T21:30:00Z  8 → 2  rps: 15 / 10 per instance → 2" in lines
    assert any(line.startswith("  ! check rps: no usable value in 25 of 360") for line in lines)


def test_the_table_says_when_the_count_query_found_no_count_at_all(
    history: PrometheusServer, policies: Path
) -> None:
    done = backtest(str(policies), *WINDOW, "--count-query", 'max(nothing{asg="$asg"})',
                    url=history.url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "None" not in done.stdout
    assert (
        '  recorded: no count in any of the 360 evaluations  (max(nothing{asg="bt-web"}))'
        in done.stdout.splitlines()
    )


def test_relative_times_read_recent_history(
    prometheus: PrometheusServer, metrics: Metrics, tmp_path: Path
) -> None:
    now = int(time.time()) // 60 * 60
    metrics.push_many(Sample("rps", 35.0, {}, float(now - 60 * i)) for i in reversed(range(40)))
    (tmp_path / "recent.yaml").write_text(policy("recent", "recent", f"sum({metrics.name('rps')})"))
    done = backtest(
        str(tmp_path / "recent.yaml"),
        "--from",
        "-30m",
        "--to",
        "now",
        "-o",
        "json",
        url=prometheus.url,
    )
    (recent,) = as_json(done)["policies"]
    assert recent["evaluations"] == 30 and recent["no_data"] == 0
    assert [(c["from"], c["to"]) for c in recent["changes"]] == [(1, 4)]


def test_exit_codes_for_usage_unreachable_prometheus_and_invalid_files(
    policies: Path, dead_prometheus_url: str, history: PrometheusServer
) -> None:
    bad_time = backtest(str(policies), "--from", "yesterday", url=history.url)
    assert bad_time.returncode == 2 and "RFC 3339" in bad_time.stderr
    backwards = backtest(str(policies), "--from", "now", "--to", "-1h", url=history.url)
    assert backwards.returncode == 2 and "must be before" in backwards.stderr
    placeholder = backtest(
        str(policies), "--from", "-1h", "--count-query", 'x{job="$job"}', url=history.url
    )
    assert placeholder.returncode == 2 and "offers $asg, $policy, $region" in placeholder.stderr
    dead = backtest(
        str(policies), "--from", "-1h", "--range-timeout", "0.2", url=dead_prometheus_url
    )
    assert dead.returncode == 3 and "gave no answer" in dead.stderr
    (policies / "broken.yaml").write_text("name: broken\nmin: 1\n")
    partly = backtest(str(policies), *WINDOW, "-o", "json", url=history.url)
    assert partly.returncode == 1 and "broken.yaml:1" in partly.stderr
    assert [p["policy"] for p in json.loads(partly.stdout)["policies"]] == ["web"]


def test_a_prometheus_that_refuses_connections_exits_3_within_an_instant_querys_deadline(
    policies: Path, dead_prometheus_url: str
) -> None:
    # Each range query retries for 3 x --range-timeout (default 60 s): about 180 s to say
    # that nothing listens there. Prometheus is probed first, with an instant query's
    # deadline (3 x --query-timeout).
    started = time.monotonic()
    done = backtest(
        str(policies),
        "--from",
        "-1h",
        "--query-timeout",
        "0.5",
        url=dead_prometheus_url,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 3, done.stderr
    assert elapsed < 60, elapsed  # a busy machine's start-up included; not the 180 s
    assert f"Prometheus at {dead_prometheus_url} gave no answer" in done.stderr
    assert "(deadline 1.5s)" in done.stderr and "Connection refused" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_prometheus_that_answers_the_probe_503_is_waited_for_by_the_range_queries(
    policies: Path, history: PrometheusServer
) -> None:
    # A Prometheus starting up (503) or a rate-limited gateway (429) answered: the probe is
    # only for a server that is not there, and the range queries wait with their deadline.
    with serve_prometheus_proxy(history.url) as proxy:
        proxy.fail("vector(1)", 503)
        done = backtest(str(policies), *WINDOW, "--query-timeout", "0.2", url=proxy.url)
    assert done.returncode == 0, done.stderr
    assert proxy.queries.get("vector(1)", 0) >= 1  # it was asked, and answered 503


def test_policies_that_send_no_query_need_no_prometheus(
    tmp_path: Path, dead_prometheus_url: str
) -> None:
    # A fixed check asks Prometheus nothing: such a backtest ran with no server, as before
    # the probe.
    folder = tmp_path / "fixed"
    folder.mkdir()
    (folder / "fixed.yaml").write_text(
        "name: fixed\ntarget: {type: nomad, job: j, group: g}\nmin: 1\nmax: 5\n"
        "checks:\n  - {name: base, strategy: fixed, count: 2}\n"
    )
    done = backtest(str(folder), "--from", "-1h", url=dead_prometheus_url, timeout=60)
    assert done.returncode == 0, done.stderr


TEMPLATE = """\
name: 'svc-{job}-{group}'
for_each: {nomad: {meta: {autoscaler.enabled: 'true'}}}
target: {type: nomad, job: '{job}', group: '{group}'}
min: 1
max: 20
interval: 1m
cooldown: {up: 2m, down: 5m}
stabilization: {up: 0s, down: 0s}
checks:
  - name: rps
    query: sum by (service) (bt_rps)
    group_by: {service: '{job}'}
    strategy: per-instance
    target: 10
"""


def test_a_template_replays_each_discovered_target_on_its_own_series_of_one_query(
    history: PrometheusServer, policies: Path, nomad_api: NomadApiStandIn
) -> None:
    for job in ("web", "api", "ghost"):  # ghost: opted in, but no series of its own
        nomad_api.register_job(job, {"main": 2}, meta={"autoscaler.enabled": "true"})
    nomad_api.register_job("batch", {"main": 1})  # not opted in
    (policies / "api.yaml").write_text(policy("api", "bt-api", 'sum(bt_rps{service="api"})'))
    (policies / "fleet.yaml").write_text(TEMPLATE)
    done = backtest(
        str(policies), *WINDOW, "--start-count", "2", "-o", "json", url=history.url,
        env=nomad_api.env,
    )  # fmt: skip
    document = as_json(done)
    by_name = {p["policy"]: p for p in document["policies"]}
    assert set(by_name) == {"web", "api", "svc-web-main", "svc-api-main", "svc-ghost-main"}
    # Each target decides on its own series exactly as a policy with its own query does.
    for name in ("web", "api"):
        ours, theirs = by_name[f"svc-{name}-main"], by_name[name]
        assert ours["changes"] == theirs["changes"], name
        assert ours["instance_hours"] == theirs["instance_hours"], name
    # One range query per distinct query: web's, api's and the template's grouped one.
    assert document["range_queries"] == 3
    # A target with no series of its own holds at every instant (never scales in).
    ghost = by_name["svc-ghost-main"]
    assert ghost["changes"] == [] and ghost["no_data"] == ghost["evaluations"] == 360
    assert ghost["check_failures"]["rps"]["first_error"].startswith(
        "no series with service='ghost' in the grouped query"
    )


def test_a_failed_discovery_is_reported_and_the_policies_are_still_replayed(
    history: PrometheusServer, policies: Path, dead_prometheus_url: str
) -> None:
    (policies / "fleet.yaml").write_text(TEMPLATE)
    done = backtest(
        str(policies), *WINDOW, "-o", "json", url=history.url,
        env={"NOMAD_ADDR": dead_prometheus_url},
    )  # fmt: skip
    assert done.returncode == 1
    assert "<discovery: Nomad jobs>" in done.stderr
    assert [p["policy"] for p in json.loads(done.stdout)["policies"]] == ["web"]


def test_plot_writes_a_self_contained_page_of_the_checks_and_counts(
    history: PrometheusServer, policies: Path, tmp_path: Path
) -> None:
    page = tmp_path / "backtest.html"
    done = backtest(str(policies), *WINDOW, "--plot", str(page), url=history.url)
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"plot written to {page}\n"
    text = page.read_text()
    assert "web: check rps (per-instance)" in text and "web: instances" in text
    assert "no usable value" in text and "8 → 2: rps: 15 / 10 per instance → 2" in text
    assert "<script" not in text and "https://" not in text
    wrong = backtest(str(policies), *WINDOW, "--plot", str(tmp_path / "x.jpg"), url=history.url)
    assert wrong.returncode == 2 and "ending in .png, .svg, .html" in wrong.stderr


def test_history_read_before_year_1_is_a_usage_error_not_a_traceback(
    tmp_path: Path, dead_prometheus_url: str
) -> None:
    """A forecast reads its history before --from: from 0001-01-01 that is before year 1."""
    text = policy("web", "bt-web", WEB).replace("target: 10}", "target: 10, forecast: {}}")
    (tmp_path / "web.yaml").write_text(text)
    done = backtest(
        str(tmp_path),
        "--from",
        "0001-01-01T00:00:00Z",
        "--to",
        "0001-01-01T06:00:00Z",
        url=dead_prometheus_url,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "must lie within year 1 to 9999" in done.stderr
