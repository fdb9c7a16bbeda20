"""`python -m bench.service`: what the long-lived service costs per target, against bare queries.

For each target kind (Nomad task groups on the Nomad API stand-in, EC2 Auto Scaling Groups
on moto; each server in a process of its own) and each size N, in one run:

1. bare queries: the N PromQL queries the policies send, alone, through our Prometheus
   adapter on 16 threads (best of 2): the floor any autoscaler has to pay;
2. `autoscaler run` (a real subprocess, 4 workers by default) over N policy files, each with
   one per-instance check on its own series of a real Prometheus, interval 10 s:
   - first pass: from the "running N policies" log line to the N-th decision logged, and
     the CPU the process used meanwhile;
   - steady state: CPU per evaluation and the share of one core, over `--window` seconds;
   - a triggered evaluation under that load (`POST /v1/policies/NAME/evaluate`);
   - resident memory (VmRSS, and the peak VmHWM), and the time SIGTERM takes to exit.
3. at the largest N: `validate` time and peak RSS over the N files.

Policies are per-policy files (templates are not on this branch yet). The machine is
shared: ratios measured side by side are what travels; absolute figures come with the load
average printed next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.adapters.sources import PrometheusSettings, PrometheusSource  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.prometheus import PrometheusServer, Sample  # noqa: E402

METRIC = "bench_load"
TICKS = os.sysconf("SC_CLK_TCK")


def query_of(i: int) -> str:
    return f'sum({METRIC}{{target="t{i}"}})'


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


@contextmanager
def standin(kind: str, count: int) -> Iterator[dict[str, str]]:
    """The target server with `count` targets in its own process; yields the client env."""
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
        yield json.loads(line)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def keep_fresh(server: PrometheusServer, count: int, stop: threading.Event) -> None:
    """Push one sample per series now and every 60 s (a pushed value lives 5 minutes)."""
    while True:
        for first in range(0, count, 2000):
            server.push_many(
                Sample(METRIC, 5.0, {"target": f"t{i}"})
                for i in range(first, min(count, first + 2000))
            )
        if stop.wait(60):
            return


def bare_queries(url: str, count: int, threads: int = 16) -> tuple[float, float]:
    """Best of 2: wall and CPU seconds of the `count` queries on `threads` threads."""
    source = PrometheusSource(PrometheusSettings(url=url, timeout=30, deadline=60))
    best = (float("inf"), 0.0)
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(2):
            wall, cpu = time.perf_counter(), time.process_time()
            list(pool.map(source.query, [query_of(i) for i in range(count)]))
            best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    source.close()
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

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._rest = b""
        self.decisions = 0
        self.decision_times: list[str] = []
        self.started_at: str | None = None

    def poll(self, keep_times_until: int = 0) -> None:
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if b'"decision": {' in line:
                self.decisions += 1
                if self.decisions <= keep_times_until:
                    self.decision_times.append(json.loads(line)["time"])
            elif self.started_at is None and b'"running ' in line:
                self.started_at = json.loads(line)["time"]


@dataclass
class Service:
    pass_s: float
    pass_cpu_per_target_ms: float
    steady_cpu_per_eval_ms: float
    steady_core_share: float
    steady_evals_per_s: float
    trigger_s: float
    rss_mb: float
    hwm_mb: float
    sigterm_s: float


def run_service(
    kind: str,
    *,
    count: int,
    env: dict[str, str],
    prometheus: str,
    work: Path,
    args: argparse.Namespace,
) -> Service:
    folder = work / f"{kind}-{count}"
    folder.mkdir()
    for i in range(count):
        (folder / f"p{i}.yaml").write_text(policy_text(kind, i, f"{args.interval}s"))
    port = free_port()
    log_path = folder / "service.log"
    command = [
        sys.executable, "-m", "autoscaler", "run", str(folder),
        "--state", str(folder / "state.db"), "--listen", f"127.0.0.1:{port}",
        "--log-format", "json", "--reload-interval", "0", "--workers", str(args.workers),
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env, "AUTOSCALER_PROMETHEUS_URL": prometheus},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    log = Log(log_path)
    try:
        deadline = time.monotonic() + 600
        while log.started_at is None:
            log.poll()
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start; see {log_path}")
            time.sleep(0.01)
        cpu_start = cpu_seconds(process.pid)
        while log.decisions < count:
            log.poll(keep_times_until=count)
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the first pass did not end; see {log_path}")
            time.sleep(0.02)
        pass_cpu = cpu_seconds(process.pid) - cpu_start
        first_pass = (
            datetime.fromisoformat(log.decision_times[count - 1])
            - datetime.fromisoformat(log.started_at)
        ).total_seconds()
        time.sleep(2)
        log.poll()
        cpu0, seen0, at0 = cpu_seconds(process.pid), log.decisions, time.monotonic()
        time.sleep(args.window)
        log.poll()
        cpu1, seen1, at1 = cpu_seconds(process.pid), log.decisions, time.monotonic()
        started = time.perf_counter()
        name = f"job{count // 2}" if kind == "nomad" else f"asg{count // 2}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/policies/{name}/evaluate", method="POST"
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            answer.read()
        trigger = time.perf_counter() - started
        rss, hwm = memory_mb(process.pid)
        started = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        process.wait(120)
        sigterm = time.perf_counter() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    evaluations = max(1, seen1 - seen0)
    return Service(
        pass_s=first_pass,
        pass_cpu_per_target_ms=pass_cpu / count * 1000,
        steady_cpu_per_eval_ms=(cpu1 - cpu0) / evaluations * 1000,
        steady_core_share=(cpu1 - cpu0) / (at1 - at0),
        steady_evals_per_s=(seen1 - seen0) / (at1 - at0),
        trigger_s=trigger,
        rss_mb=rss,
        hwm_mb=hwm,
        sigterm_s=sigterm,
    )


_PEAK = """
import atexit, runpy, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("VmHWM " + line.split()[1] + "\\n")
atexit.register(peak)
sys.argv = ["autoscaler", *sys.argv[1:]]
runpy.run_module("autoscaler", run_name="__main__", alter_sys=True)
"""


def command_cost(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit code of `autoscaler ARGS`."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _PEAK, *args],
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kinds", default="nomad,asg")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--interval", type=int, default=10, help="policy interval, seconds")
    parser.add_argument("--window", type=float, default=30, help="steady-state window, s")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--plan", action="store_true", help="also time `plan` at the largest N")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    print(
        "\n| kind | N | bare queries s | first pass s | ratio | CPU/target, pass ms | "
        "CPU/eval ms | share of a core | evals/s | trigger s | RSS MB (peak) | SIGTERM s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        work = Path(tmp)
        stop = threading.Event()
        with PrometheusServer(work / "prometheus") as prometheus:
            pusher = threading.Thread(
                target=keep_fresh, args=(prometheus, max(sizes), stop), daemon=True
            )
            pusher.start()
            time.sleep(1)
            for kind in kinds:
                with standin(kind, max(sizes)) as env:
                    for count in sizes:
                        bare, _ = bare_queries(prometheus.url, count)
                        s = run_service(
                            kind,
                            count=count,
                            env=env,
                            prometheus=prometheus.url,
                            work=work,
                            args=args,
                        )
                        print(
                            f"| {kind} | {count:,} | {bare:.2f} | {s.pass_s:.2f} | "
                            f"{s.pass_s / bare:.2f}× | {s.pass_cpu_per_target_ms:.2f} | "
                            f"{s.steady_cpu_per_eval_ms:.2f} | {s.steady_core_share:.0%} | "
                            f"{s.steady_evals_per_s:.0f} | {s.trigger_s:.3f} | "
                            f"{s.rss_mb:.0f} ({s.hwm_mb:.0f}) | {s.sigterm_s:.1f} |",
                            flush=True,
                        )
                    largest = work / f"{kind}-{max(sizes)}"
                    seconds, peak, code = command_cost(["validate", str(largest)], env)
                    print(
                        f"\nvalidate of {max(sizes):,} {kind} policy files: {seconds:.2f} s, "
                        f"peak RSS {peak:.0f} MB (exit {code})",
                        flush=True,
                    )
                    if args.plan:
                        plan = ["plan", str(largest), "-o", "json"]
                        seconds, peak, code = command_cost(
                            plan, {**env, "AUTOSCALER_PROMETHEUS_URL": prometheus.url}
                        )
                        print(
                            f"plan of {max(sizes):,} {kind} policies: {seconds:.2f} s, "
                            f"peak RSS {peak:.0f} MB (exit {code})",
                            flush=True,
                        )
            stop.set()
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
