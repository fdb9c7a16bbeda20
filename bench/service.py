"""`python -m bench.service`: what the long-lived service costs per target, against bare queries.

Two modes (`--mode per-policy|templated|both`), each size N in one run:

**per-policy**, for each target kind (Nomad task groups on the Nomad API stand-in, EC2 Auto
Scaling Groups on moto; each server in a process of its own):

1. bare queries: the N PromQL queries the policies send, alone, through our Prometheus
   adapter on 16 threads (best of 2): the floor any autoscaler has to pay;
2. `autoscaler run` (a real subprocess, 4 workers by default) over N policy files, each with
   one per-instance check on its own series of a real Prometheus, interval 10 s:
   - first pass: from the "running N policies" log line to the N-th decision logged, and
     the CPU the process used meanwhile;
   - steady state: CPU per evaluation and the share of one core, over `--window` seconds;
   - a triggered evaluation under that load (`POST /v1/policies/NAME/evaluate`);
   - resident memory (VmRSS, and the peak VmHWM);
   - one scrape of `/metrics` under that load: its time, the CPU it took beyond the
     steady state's rate, and RSS right after it;
   - the time SIGTERM takes to exit.
3. at the largest N: `validate` time and peak RSS over the N files (and `plan` with `--plan`).

**templated** (Nomad only): N jobs on a Nomad API stand-in of their own whose meta opts in
(`autoscaler.enabled = "true"`), one policy template (`for_each` over that meta) with one
per-instance check on a grouped `sum by (job) (...)` query over N series (one per job).
The same measurements, with:

- two floors: the N bare per-target queries (16 threads, best of 2) and the one grouped
  query that replaces them (best of 5);
- discovery: from the "running 0 policies" line to the "policies reloaded" line that adds
  the N expanded policies (one listing and one read of each job), and its CPU;
- first pass: from that "policies reloaded" line to the N-th decision;
- at the largest N, `validate --discover` and `plan` of the template (discovery included).

The CPU of the stand-in serving the targets is reported next to the service's over the
steady-state window: with one status read per evaluation, it is part of the cost.

The machine is shared: ratios measured side by side are what travels; absolute figures come
with the load average printed next to them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.adapters.sources import PrometheusSettings, PrometheusSource  # noqa: E402
from bench.plan_cost import PEAK  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.prometheus import PrometheusServer, Sample  # noqa: E402

METRIC = "bench_load"
GROUPED = "bench_grouped"  # the templated mode's series: {size="N", job="jobI"}
TICKS = os.sysconf("SC_CLK_TCK")


def query_of(i: int) -> str:
    return f'sum({METRIC}{{target="t{i}"}})'


def grouped_query(count: int) -> str:
    """The template's one query for N targets: one series per job."""
    return f'sum by (job) ({GROUPED}{{size="{count}"}})'


def target_query(count: int, i: int) -> str:
    """What job I's own query would be without the template (the bare per-target floor)."""
    return f'sum({GROUPED}{{size="{count}", job="job{i}"}})'


def policy_text(kind: str, i: int, interval: str) -> str:
    if kind == "nomad":
        name, target = f"job{i}", f"{{type: nomad, job: job{i}, group: web}}"
    else:
        name, target = f"asg{i}", f"{{type: aws-asg, asg: asg{i}}}"
    return (
        f"name: {name}\ntarget: {target}\nmin: 1\nmax: 10\ninterval: {interval}\n"
        "checks:\n"
        f"  - name: load\n    query: '{query_of(i)}'\n    strategy: per-instance\n"
        "    target: 10\n"
    )


def template_text(count: int, interval: str) -> str:
    return (
        'name: "web-{job}-{group}"\n'
        'for_each:\n  nomad: {meta: {autoscaler.enabled: "true"}}\n'
        'target: {type: nomad, job: "{job}", group: "{group}"}\n'
        f"min: 1\nmax: 10\ninterval: {interval}\n"
        "checks:\n"
        f"  - name: load\n    query: '{grouped_query(count)}'\n"
        '    group_by: {job: "{job}"}\n    strategy: per-instance\n    target: 10\n'
    )


@dataclass
class StandIn:
    env: dict[str, str]
    pid: int


@contextmanager
def standin(kind: str, count: int) -> Iterator[StandIn]:
    """The target server with `count` targets in its own process; yields its client env."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.standins", kind, str(count)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {kind} stand-in did not start")
        yield StandIn(json.loads(line), process.pid)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def push_all(server: PrometheusServer, samples: Iterator[Sample]) -> None:
    """Push one sample per series, 2,000 per remote-write request."""
    batch: list[Sample] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == 2000:
            server.push_many(batch)
            batch = []
    if batch:
        server.push_many(batch)


def keep_fresh(
    server: PrometheusServer, samples: Callable[[], Iterator[Sample]], stop: threading.Event
) -> None:
    """Push every series again every 60 s (a pushed value lives 5 minutes)."""
    while not stop.wait(60):
        push_all(server, samples())


def series(per_policy: int, templated: list[int]) -> Iterator[Sample]:
    """Every series the run reads: per-policy `target` series, and per templated size N, N
    series `{size="N", job="jobI"}` (each size its own, so a grouped query of 100 targets
    does not carry 10,000 series)."""
    for i in range(per_policy):
        yield Sample(METRIC, 5.0, {"target": f"t{i}"})
    for count in templated:
        for i in range(count):
            yield Sample(GROUPED, 5.0, {"size": str(count), "job": f"job{i}"})


def bare_queries(url: str, queries: list[str], threads: int = 16) -> tuple[float, float]:
    """Best of 2: wall and CPU seconds of the `queries` on `threads` threads."""
    source = PrometheusSource(PrometheusSettings(url=url, timeout=30, deadline=60))
    best = (float("inf"), 0.0)
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(2):
            wall, cpu = time.perf_counter(), time.process_time()
            list(pool.map(source.query, queries))
            best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    source.close()
    return best


def bare_grouped(url: str, query: str, count: int) -> float:
    """Best of 5: wall seconds of the one grouped query (checked to return `count` series)."""
    source = PrometheusSource(PrometheusSettings(url=url, timeout=30, deadline=60))
    best = float("inf")
    for _ in range(5):
        wall = time.perf_counter()
        answer = source.query_series(query)
        best = min(best, time.perf_counter() - wall)
    source.close()
    if len(answer) != count:
        raise RuntimeError(f"{query} returned {len(answer)} series, not {count}")
    return best


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


class Log:
    """Follows the service's JSON log: decisions counted, the time of chosen lines."""

    def __init__(self, path: Path, keep_times_until: int) -> None:
        self.path = path
        self.keep_times_until = keep_times_until  # the times of the first decisions
        self._offset = 0
        self._rest = b""
        self.decisions = 0
        self.decision_times: list[str] = []
        self.started_at: str | None = None
        self.reloaded_at: str | None = None  # the first "policies reloaded" (discovery)

    def poll(self) -> None:
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if b'"decision": {' in line or b'"decision":{' in line:
                self.decisions += 1
                if self.decisions <= self.keep_times_until:
                    self.decision_times.append(json.loads(line)["time"])
            elif self.started_at is None and b'"running ' in line:
                self.started_at = json.loads(line)["time"]
            elif self.reloaded_at is None and b'"policies reloaded: ' in line:
                self.reloaded_at = json.loads(line)["time"]


@dataclass
class Service:
    discovery_s: float  # templated: "running" to "policies reloaded"; else 0
    discovery_cpu_s: float
    pass_s: float
    pass_cpu_per_target_ms: float
    steady_cpu_per_eval_ms: float
    steady_core_share: float
    steady_evals_per_s: float
    standin_core_share: float  # the target server's CPU over the same window
    trigger_s: float
    rss_mb: float
    hwm_mb: float
    scrape_s: float  # one GET /metrics under that load
    scrape_cpu_s: float  # the service's CPU over it, beyond the steady state's rate
    scrape_rss_mb: float  # RSS right after it
    scrape_rss_later_mb: float  # and 5 s later (what the allocator kept of it)
    sigterm_s: float


def _wait(
    log: Log, process: subprocess.Popen[bytes], deadline: float, done: Callable[[], bool]
) -> None:
    """Follow `log` until `done()`; raise if the service exits or the deadline passes."""
    while not done():
        log.poll()
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the service exited or stalled; see {log.path}")
        time.sleep(0.01)


def _first_pass(
    log: Log, process: subprocess.Popen[bytes], deadline: float, count: int, *, port: int | None
) -> str:
    """When the `count`-th decision was made: its log line's time, or (`port`: decisions
    are not all logged) when /metrics first counted `count` evaluations, to within 1 s."""
    if port is None:
        _wait(log, process, deadline, lambda: log.decisions >= count)
        return log.decision_times[count - 1]
    while _evaluated(port) < count:
        _wait(log, process, deadline, lambda: True)
        time.sleep(1)
    return datetime.now(UTC).isoformat()


def _evaluated(port: int) -> int:
    """Evaluations so far, from the service's `autoscaler_evaluations_total` (every policy)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as answer:
        text = answer.read().decode()
    return round(
        sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("autoscaler_evaluations_total{")
        )
    )


def _steady(pid: int, args: argparse.Namespace) -> None:
    """Sleep through the steady-state window; with `--rss-every`, print the service's RSS
    (and its peak so far) at that period, to see what grows and when."""
    if not args.rss_every:
        time.sleep(args.window)
        return
    started = time.monotonic()
    while (left := args.window - (time.monotonic() - started)) > 0:
        time.sleep(min(args.rss_every, left))
        rss, hwm = memory_mb(pid)
        at = time.monotonic() - started
        print(f"  {at:5.0f} s: RSS {rss:.1f} MB (peak {hwm:.1f})", flush=True)


def _seconds(since: str, until: str) -> float:
    return (datetime.fromisoformat(until) - datetime.fromisoformat(since)).total_seconds()


def write_policies(mode: str, kind: str, count: int, folder: Path, interval: str) -> str:
    """Write the policy files of one run into `folder`; the name of one policy to trigger."""
    folder.mkdir()
    if mode == "templated":
        (folder / "template.yaml").write_text(template_text(count, interval))
        return f"web-job{count // 2}-web"
    for i in range(count):
        (folder / f"p{i}.yaml").write_text(policy_text(kind, i, interval))
    return f"job{count // 2}" if kind == "nomad" else f"asg{count // 2}"


def run_service(
    mode: str,
    kind: str,
    *,
    count: int,
    target: StandIn,
    prometheus: str,
    work: Path,
    args: argparse.Namespace,
) -> Service:
    folder = work / f"{mode}-{kind}-{count}"
    name = write_policies(mode, kind, count, folder, f"{args.interval}s")
    port = free_port()
    log_path = folder / "service.log"
    command = [
        sys.executable, "-m", "autoscaler", "run", str(folder),
        "--state", str(folder / "state.db"), "--listen", f"127.0.0.1:{port}",
        "--log-format", "json", "--reload-interval", "0", "--workers", str(args.workers),
        "--log-decisions", args.log_decisions, "--metrics-histograms", args.metrics_histograms,
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **target.env, "AUTOSCALER_PROMETHEUS_URL": prometheus},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    log = Log(log_path, keep_times_until=count)
    templated = mode == "templated"
    try:
        deadline = time.monotonic() + 900
        _wait(log, process, deadline, lambda: log.started_at is not None)
        cpu_start = cpu_seconds(process.pid)
        discovery_cpu = 0.0
        if templated:
            _wait(log, process, deadline, lambda: log.reloaded_at is not None)
            cpu_reloaded = cpu_seconds(process.pid)
            discovery_cpu, cpu_start = cpu_reloaded - cpu_start, cpu_reloaded
        logged = args.log_decisions == "all"
        passed_at = _first_pass(log, process, deadline, count, port=None if logged else port)
        pass_cpu = cpu_seconds(process.pid) - cpu_start
        assert log.started_at is not None
        pass_from = log.reloaded_at if templated and log.reloaded_at else log.started_at
        first_pass, discovery = _seconds(pass_from, passed_at), _seconds(log.started_at, pass_from)
        time.sleep(2)
        log.poll()
        seen0 = log.decisions if logged else _evaluated(port)  # scraped before the CPU is read
        cpu0, at0 = cpu_seconds(process.pid), time.monotonic()
        standin0 = cpu_seconds(target.pid)
        _steady(process.pid, args)
        log.poll()
        cpu1, at1 = cpu_seconds(process.pid), time.monotonic()
        standin1 = cpu_seconds(target.pid)
        seen1 = log.decisions if logged else _evaluated(port)
        trigger = _trigger(port, name)
        rss, hwm = memory_mb(process.pid)
        scrape, scrape_cpu, scrape_rss, scrape_later = _scrape_cost(
            process.pid, port, (cpu1 - cpu0) / (at1 - at0)
        )
        started = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        process.wait(120)
        sigterm = time.perf_counter() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    evaluations = seen1 - seen0  # none in a window shorter than the interval: nan below
    return Service(
        discovery_s=discovery,
        discovery_cpu_s=discovery_cpu,
        pass_s=first_pass,
        pass_cpu_per_target_ms=pass_cpu / count * 1000,
        steady_cpu_per_eval_ms=(cpu1 - cpu0) / evaluations * 1000 if evaluations else math.nan,
        steady_core_share=(cpu1 - cpu0) / (at1 - at0),
        steady_evals_per_s=(seen1 - seen0) / (at1 - at0),
        standin_core_share=(standin1 - standin0) / (at1 - at0),
        trigger_s=trigger,
        rss_mb=rss,
        hwm_mb=hwm,
        scrape_s=scrape,
        scrape_cpu_s=scrape_cpu,
        scrape_rss_mb=scrape_rss,
        scrape_rss_later_mb=scrape_later,
        sigterm_s=sigterm,
    )


def _trigger(port: int, name: str) -> float:
    """Seconds for `POST /v1/policies/NAME/evaluate` to answer."""
    started = time.perf_counter()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/policies/{name}/evaluate", method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        answer.read()
    return time.perf_counter() - started


def _scrape_cost(pid: int, port: int, rate: float) -> tuple[float, float, float, float]:
    """One GET /metrics: its seconds, the service's CPU over it beyond `rate` (the steady
    state's share of a core, which the evaluations keep using meanwhile), RSS right after
    it and 5 s later (what the allocator kept of the scrape's buffers)."""
    cpu, started = cpu_seconds(pid), time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as answer:
        answer.read()
    seconds = time.perf_counter() - started
    used, after = cpu_seconds(pid) - cpu - rate * seconds, memory_mb(pid)[0]
    time.sleep(5)
    return seconds, used, after, memory_mb(pid)[0]


def command_cost(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit code of `autoscaler ARGS`."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    peaks = re.findall(r"^VmHWM (\d+)$", result.stderr, re.MULTILINE)
    return seconds, int(peaks[-1]) / 1024 if peaks else float("nan"), result.returncode


def _scrape(s: Service) -> str:
    return (
        f"{s.scrape_s:.2f} ({s.scrape_cpu_s:.2f}), {s.scrape_rss_mb:.0f} MB, "
        f"{s.scrape_rss_later_mb:.0f} MB 5 s later"
    )


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def commands(
    what: str, folder: Path, *, count: int, env: dict[str, str], prometheus: str, plan: bool
) -> None:
    """`validate` (and `plan`) of `folder`; templates are expanded (`--discover`)."""
    validate = ["validate", str(folder)] + (["--discover"] if what == "templated" else [])
    seconds, peak, code = command_cost(validate, env)
    print(
        f"\n{' '.join(validate[:1] + validate[2:])} of {count:,} {what} policies: "
        f"{seconds:.2f} s, peak RSS {peak:.0f} MB (exit {code}; load {_load()})",
        flush=True,
    )
    if plan:
        command = ["plan", str(folder), "-o", "json"]
        seconds, peak, code = command_cost(
            command, {**env, "AUTOSCALER_PROMETHEUS_URL": prometheus}
        )
        print(
            f"plan of {count:,} {what} policies: {seconds:.2f} s, peak RSS {peak:.0f} MB "
            f"(exit {code}; load {_load()})",
            flush=True,
        )


def per_policy(
    kinds: list[str], sizes: list[int], prometheus: str, work: Path, args: argparse.Namespace
) -> None:
    for kind in kinds:  # a table per kind: `validate` is printed after each
        print(
            f"\nPer-policy files, {kind}:\n\n"
            "| kind | N | bare queries s | first pass s | ratio | CPU/target, pass ms | "
            "CPU/eval ms | share of a core | evals/s | stand-in core | trigger s | "
            "RSS MB (peak) | /metrics s (CPU), RSS after, 5 s later | SIGTERM s | load |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        with standin(kind, max(sizes)) as target:
            for count in sizes:
                bare, _ = bare_queries(prometheus, [query_of(i) for i in range(count)])
                s = run_service(
                    "per-policy", kind, count=count, target=target, prometheus=prometheus,
                    work=work, args=args,
                )  # fmt: skip
                print(
                    f"| {kind} | {count:,} | {bare:.2f} | {s.pass_s:.2f} | "
                    f"{s.pass_s / bare:.2f}× | {s.pass_cpu_per_target_ms:.2f} | "
                    f"{s.steady_cpu_per_eval_ms:.2f} | {s.steady_core_share:.0%} | "
                    f"{s.steady_evals_per_s:.0f} | {s.standin_core_share:.0%} | "
                    f"{s.trigger_s:.3f} | {s.rss_mb:.0f} ({s.hwm_mb:.0f}) | {_scrape(s)} | "
                    f"{s.sigterm_s:.1f} | {_load()} |",
                    flush=True,
                )
            largest = work / f"per-policy-{kind}-{max(sizes)}"
            commands(
                kind, largest, count=max(sizes), env=target.env, prometheus=prometheus,
                plan=args.plan,
            )  # fmt: skip


def templated(sizes: list[int], prometheus: str, work: Path, args: argparse.Namespace) -> None:
    print(
        "\nOne template over N opted-in Nomad jobs (one grouped query per tick):\n\n"
        "| N | bare queries s | grouped query s | discovery s (CPU) | first pass s | "
        "ratio to bare | ratio to grouped | CPU/target, pass ms | CPU/eval ms | "
        "share of a core | evals/s | stand-in core | trigger s | RSS MB (peak) | "
        "/metrics s (CPU), RSS after, 5 s later | SIGTERM s | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for count in sizes:
        with standin("nomad-meta", count) as target:
            bare, _ = bare_queries(prometheus, [target_query(count, i) for i in range(count)])
            grouped = bare_grouped(prometheus, grouped_query(count), count)
            s = run_service(
                "templated", "nomad", count=count, target=target, prometheus=prometheus,
                work=work, args=args,
            )  # fmt: skip
            print(
                f"| {count:,} | {bare:.2f} | {grouped:.3f} | {s.discovery_s:.2f} "
                f"({s.discovery_cpu_s:.2f}) | {s.pass_s:.2f} | {s.pass_s / bare:.2f}× | "
                f"{s.pass_s / grouped:.0f}× | {s.pass_cpu_per_target_ms:.2f} | "
                f"{s.steady_cpu_per_eval_ms:.2f} | {s.steady_core_share:.0%} | "
                f"{s.steady_evals_per_s:.0f} | {s.standin_core_share:.0%} | "
                f"{s.trigger_s:.3f} | {s.rss_mb:.0f} ({s.hwm_mb:.0f}) | {_scrape(s)} | "
                f"{s.sigterm_s:.1f} | {_load()} |",
                flush=True,
            )
            if count == max(sizes):
                folder = work / f"templated-nomad-{count}"
                commands(
                    "templated", folder, count=count, env=target.env,
                    prometheus=prometheus, plan=args.plan,
                )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["per-policy", "templated", "both"], default="per-policy")
    parser.add_argument("--kinds", default="nomad,asg", help="per-policy target kinds")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--interval", type=int, default=10, help="policy interval, seconds")
    parser.add_argument("--window", type=float, default=30, help="steady-state window, s")
    parser.add_argument(
        "--rss-every", type=float, default=0, help="print the RSS every S s of the window"
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--metrics-histograms", choices=["per-policy", "total"], default="per-policy"
    )
    parser.add_argument(
        "--log-decisions",
        choices=["all", "changes"],
        default="all",
        help="the service's --log-decisions; with changes, decisions are counted on /metrics "
        "(the first pass to within a second)",
    )
    parser.add_argument("--plan", action="store_true", help="also time `plan` at the largest N")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    modes = ["per-policy", "templated"] if args.mode == "both" else [args.mode]
    print(f"load average at start: {_load()} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        work = Path(tmp)
        stop = threading.Event()
        with PrometheusServer(work / "prometheus") as prometheus:
            per_policy_series = max(sizes) if "per-policy" in modes else 0
            templated_sizes = sizes if "templated" in modes else []

            def samples() -> Iterator[Sample]:
                return series(per_policy_series, templated_sizes)

            push_all(prometheus, samples())
            pusher = threading.Thread(
                target=keep_fresh, args=(prometheus, samples, stop), daemon=True
            )
            pusher.start()
            if "per-policy" in modes:
                per_policy(kinds, sizes, prometheus.url, work, args)
            if "templated" in modes:
                templated(sizes, prometheus.url, work, args)
            stop.set()
    print(f"\nload average at end: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
