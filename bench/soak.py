"""`python -m bench.soak`: the real service under policy churn; does anything grow or stick?

`autoscaler run` (SQLite state, reload interval 2 s), a real Prometheus and the Nomad API
stand-in (in this process), one template over N jobs' opt-in meta and `--files` policy files
on jobs of their own, whose requests answer `--slow` s late. Every `--flip-every` s a tenth
of the jobs flip their opt-in; every `--files-every` s a file is renamed (a new name takes
over a target whose run may be in flight), removed or re-added, or the template edited, with
a SIGHUP; every 60 s the load changes. Every 15 s a row: RSS, threads, fds, `/metrics` series,
policies, those stuck (not evaluated nor added within 3x their interval, two rows running),
state rows; then SIGTERM's time to exit and the log's errors. Removed policies' memory is
kept 7 days (not settable): renamed ones' rows stay; decisions are capped (--history-max).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.service import memory_mb, push_all  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.nomad_api import NomadApiStandIn, RecordedRequest  # noqa: E402
from tests.support.prometheus import PrometheusServer, Sample  # noqa: E402

METRIC = "soak_load"
OPT_IN = {"autoscaler.enabled": "true"}
FOR_EACH = 'for_each:\n  nomad: {meta: {autoscaler.enabled: "true"}}\n'
GROUPED = f'sum by (job) ({METRIC})\'\n    group_by: {{job: "{{job}}"}}'
TEMPLATE = (
    f'name: "web-{{job}}-{{group}}"\n{FOR_EACH}target: {{type: nomad, job: "{{job}}", '
    f'group: "{{group}}"}}\nmin: 1\nmax: 10\ninterval: 10s\nchecks:\n  - name: load\n'
    f"    query: '{GROUPED}\n    strategy: per-instance\n    target: 10\n"
)


def file_policy(name: str, job: str) -> str:
    """The template's policy for one job, in a file of its own under `name`."""
    text = TEMPLATE.replace(FOR_EACH, "").replace("web-{job}-{group}", name)
    text = text.replace(GROUPED, f'sum({METRIC}{{job="{job}"}})\'')
    return text.replace("{job}", job).replace("{group}", "web")


def get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as answer:
        return bytes(answer.read())


class SlowStandIn(NomadApiStandIn):
    """Requests about the files' jobs answer `slow` s late (a rename lands on a run in
    flight); `overlaps` counts runs' requests (scale, deployment) on one job at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slow, self.busy, self.overlaps = 0.0, Counter[str](), 0

    def handle(self, request: RecordedRequest) -> tuple[int, Any]:
        job, _, what = request.path.removeprefix("/v1/job/").partition("/")
        file_job = job.startswith("file")
        run = file_job and what in ("scale", "deployment")  # not discovery's
        with self._lock:
            self.busy[job] += run
            self.overlaps += run and self.busy[job] > 1
        try:
            if file_job:
                time.sleep(self.slow)
            return super().handle(request)
        finally:
            with self._lock:
                self.busy[job] -= run


class Churn:
    """The jobs' opt-in flips, the policy files' renames/removals/returns, and the load."""

    def __init__(self, nomad: NomadApiStandIn, folder: Path, args: argparse.Namespace) -> None:
        self.nomad, self.folder, self.args = nomad, folder, args
        self.random, self.opted = random.Random(args.seed), [True] * args.jobs
        # File slot i: (its file, its policy's name) on job file{i}; `gone` while removed.
        self.slots = {i: (f"file{i}.yaml", f"file{i}-g0") for i in range(args.files)}
        self.gone: dict[int, tuple[str, str]] = {}
        self.counts: Counter[str] = Counter()
        self.jobs = [f"job{i}" for i in range(args.jobs)] + [f"file{i}" for i in self.slots]
        for job in self.jobs:
            self.job(job, 1, None if job.startswith("file") else OPT_IN)
        self.put("template.yaml", TEMPLATE)
        for i, (file, name) in self.slots.items():
            self.put(file, file_policy(name, f"file{i}"))

    def job(self, job: str, count: int, meta: dict[str, str] | None) -> None:
        self.nomad.register_job(job, {"web": count}, meta=meta)
        self.nomad.set_deployment(job, "successful")

    def put(self, file: str, text: str) -> None:
        (self.folder / f".{file}.tmp").write_text(text)  # a dot file: not a policy file
        os.replace(self.folder / f".{file}.tmp", self.folder / file)

    def flip(self) -> None:
        for i in self.random.sample(range(self.args.jobs), max(1, self.args.jobs // 10)):
            self.opted[i] = not self.opted[i]
            count = self.nomad.group_count(f"job{i}", "web")
            self.job(f"job{i}", count, OPT_IN if self.opted[i] else None)
            self.counts["flips"] += 1

    def change_files(self, pid: int) -> None:
        what = self.random.choice(["rename", "remove", "return", "template"])
        if not (self.gone if what == "return" else self.slots):
            what = "template"
        slot = self.random.choice(sorted(self.gone if what == "return" else self.slots) or [0])
        n, old = self.counts[what] + 1, self.slots.get(slot, ("", ""))[0]
        if what == "template":  # every expanded policy updated (max 11, then 10 again)
            self.put("template.yaml", TEMPLATE.replace("max: 10", f"max: {10 + n % 2}"))
        elif what == "return":
            self.slots[slot] = self.gone.pop(slot)
        elif what == "remove":
            self.gone[slot] = self.slots.pop(slot)
            (self.folder / old).unlink()
        else:  # a new file and policy name on the same target
            self.slots[slot] = (f"file{slot}-{n}.yaml", f"file{slot}-g{n}")
            os.rename(self.folder / old, self.folder / self.slots[slot][0])
        if what in ("return", "rename"):
            self.put(self.slots[slot][0], file_policy(self.slots[slot][1], f"file{slot}"))
        self.counts[what] += 1
        os.kill(pid, signal.SIGHUP)

    def load(self) -> list[Sample]:
        loads = self.random.choices([3, 8, 15, 25, 45], k=len(self.jobs))
        return [Sample(METRIC, v, {"job": j}) for j, v in zip(self.jobs, loads, strict=True)]


def every(seconds: float, stop: threading.Event, action: Callable[[], object]) -> None:
    def loop() -> None:
        while not stop.wait(seconds):
            try:
                action()
            except Exception as exc:
                print(f"churn step failed: {exc!r}", flush=True)

    threading.Thread(target=loop, daemon=True).start()


def sample(pid: int, port: int, state: Path, memo: dict[str, Any], t0: float) -> dict[str, Any]:
    """One row; stuck: enabled policies neither evaluated nor added (first seen) within 3x
    their interval, at this sample and the one before (`memo` keeps what it needs)."""
    metrics = get(port, "/metrics").decode()
    policies, now = json.loads(get(port, "/v1/policies"))["policies"], time.time()
    decisions = {p["name"]: p["last_decision"] for p in policies if p["last_decision"]}
    decided = {n: datetime.fromisoformat(d["time"]).timestamp() for n, d in decisions.items()}
    since = memo["since"] = {p["name"]: memo["since"].get(p["name"], now) for p in policies}
    due = {p["name"]: now - 3 * p["interval_seconds"] for p in policies if p["enabled"]}
    late = {name for name, at in due.items() if max(since[name], decided.get(name, 0)) < at}
    stuck, memo["late"] = sorted(late & memo["late"]), late
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)) as db:
        tables = ("memory", "targets", "decisions")
        rows = [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables]
    return {
        "t s": round(time.monotonic() - t0),
        "RSS MB": round(memory_mb(pid)[0], 1),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "series": sum(1 for line in metrics.splitlines() if line and not line.startswith("#")),
        "policies": len(policies),
        "stuck": len(stuck),
        **{f"{t} rows": n for t, n in zip(tables, rows, strict=True)},
        "load": round(os.getloadavg()[0], 1),
        "_stuck": stuck[:5],
    }


def verdict(samples: list[dict[str, Any]]) -> list[str]:
    """Columns whose last third passes their middle third (by 10 %, 3 at least), at top."""
    third = max(1, len(samples) // 3)
    found = []
    for column in list(samples[0])[1:9]:  # RSS to targets rows (decisions: --history-max)
        values = [float(s[column]) for s in samples]
        middle, last = (sum(v) / max(1, len(v)) for v in (values[third:-third], values[-third:]))
        if middle and last > max(1.1 * middle, middle + 3) and values[-1] >= max(values):
            found.append(f"{column}: {middle:.0f} -> {last:.0f} (middle -> last third)")
    return found


def soak(args: argparse.Namespace, work: Path, churn: Churn, prometheus: PrometheusServer) -> str:
    """Run the service under churn; print the samples; the end's line (SIGTERM)."""
    port, log_path, state = free_port(), work / "service.log", work / "state.db"
    command = [
        sys.executable, "-m", "autoscaler", "run", str(churn.folder), "--state", str(state),
        "--listen", f"127.0.0.1:{port}", "--log-format", "json", "--log-decisions", "changes",
        "--reload-interval", "2", "--workers", str(args.workers),
    ]  # fmt: skip
    env = {**os.environ, **churn.nomad.env, "AUTOSCALER_PROMETHEUS_URL": prometheus.url}
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    try:
        started = time.monotonic()
        while True:  # until the API answers
            try:
                get(port, "/healthz")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() - started > 60:
                    raise RuntimeError(f"the service did not start; see {log_path}") from None
                time.sleep(0.5)
        every(args.flip_every, stop, churn.flip)
        every(args.files_every, stop, lambda: churn.change_files(process.pid))
        every(60, stop, lambda: push_all(prometheus, iter(churn.load())))
        memo: dict[str, Any] = {"since": {}, "late": set()}
        end = started + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(args.sample_every)
            if process.poll() is not None:
                raise RuntimeError(f"the service exited; see {log_path}")
            samples.append(row := sample(process.pid, port, state, memo, started))
            if len(samples) == 1:  # the table's head; a row per sample as it comes
                print("| " + " | ".join(list(row)[:-1]) + " |\n|" + "---|" * (len(row) - 1))
            print("| " + " | ".join(str(v) for v in list(row.values())[:-1]) + " |", flush=True)
            if row["_stuck"]:
                print(f"  stuck at {row['t s']} s: {row['_stuck']}", flush=True)
        stop.set()
        at = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        ended = f"SIGTERM: exit {process.wait(120)} in {time.perf_counter() - at:.1f} s"
    finally:
        stop.set()
        process.kill()  # nothing once it has exited
        process.wait()
    ever = "see above" if any(s["stuck"] for s in samples) else "none"
    print(f"\ngrows: {'; '.join(verdict(samples)) or 'nothing'}\nstuck: {ever}")
    return ended


def report_log(path: Path) -> None:
    """Tracebacks, lines per level, error lines and the commonest warnings of the log."""
    lines = path.read_text(errors="replace").splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    levels = Counter(r["level"] for r in records)
    warned = Counter(
        re.sub(r"\d+", "N", r["message"])[:100] for r in records if r["level"] == "warning"
    )
    errors = [r for r in records if r["level"] in ("error", "critical") or "exception" in r]
    print(
        f"log: {sum('Traceback' in line for line in lines)} tracebacks, "
        f"{len(lines) - len(records)} lines not JSON, lines per level {dict(levels)}"
    )
    for r in errors[:5]:
        print(f"  {r['level']}: {r['message'][:300]} {r.get('exception', '')[-600:]}")
    for message, n in warned.most_common(6):
        print(f"  warning x{n}: {message}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for flag, default in (("minutes", 5.0), ("jobs", 500), ("files", 10), ("workers", 4),
                          ("flip-every", 5.0), ("files-every", 3.0), ("sample-every", 15.0),
                          ("seed", 1), ("slow", 2.0)):  # fmt: skip
        parser.add_argument(f"--{flag}", type=type(default), default=default)
    parser.add_argument("--keep", type=Path, help="keep the service's log and state here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        work = args.keep or Path(tmp)
        (work / "policies").mkdir(parents=True, exist_ok=True)
        nomad = SlowStandIn()
        nomad.record_requests, nomad.slow = False, args.slow
        nomad.start()
        churn = Churn(nomad, work / "policies", args)
        print(f"soak: {args.jobs} jobs, {args.files} files, {args.minutes} min\n", flush=True)
        try:
            with PrometheusServer(work / "prometheus") as prometheus:
                push_all(prometheus, iter(churn.load()))
                ended = soak(args, work, churn, prometheus)
        finally:
            nomad.stop()
        print(
            f"churn: {dict(churn.counts)}\n{ended}\ntwo runs on a target at once: {nomad.overlaps}"
        )
        report_log(work / "service.log")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
