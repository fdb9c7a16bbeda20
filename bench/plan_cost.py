"""`python -m bench.plan_cost`: wall time and peak RSS of `autoscaler plan`, before and after.

Runs `autoscaler plan` over N generated ASG policies (against moto, in this process, with
the `fill_moto_gaps` patch of the tests) and over N Nomad policies (against the Nomad API
stand-in of the tests), once with the code of a baseline revision (`--baseline`, default
`main`, exported with `git archive`) and once with this checkout, in the same run, and
prints both with their ratios. Each policy has one fixed check, so no query is sent: what
is measured is the cost of the targets (clients, connections, status reads).

Not a test: the numbers depend on the machine and its load; the ratios travel better.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXED = "checks:\n  - {name: fixed, strategy: fixed, count: 2}\n"


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_mb: float
    exit_code: int


# Runs `python -m autoscaler ARGS` and, on the way out, reports the process's own peak RSS
# (VmHWM). The child's rusage would not do: after a vfork it counts this big process too.
PEAK = """
import atexit, runpy, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("VmHWM " + line.split()[1] + "\\n")
atexit.register(peak)
sys.argv = ["autoscaler", *sys.argv[1:]]
runpy.run_module("autoscaler", run_name="__main__", alter_sys=True)
"""


def measure(code: Path, folder: Path, env: Mapping[str, str]) -> Run:
    """`autoscaler plan FOLDER -o json` with the package found in `code`: time, peak RSS."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", PEAK, "plan", str(folder), "-o", "json"],
        cwd=code,
        env={**os.environ, **env, "PYTHONPATH": str(code)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    peaks = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("VmHWM ")]
    rss_mb = int(peaks[-1]) / 1024 if peaks else float("nan")
    return Run(seconds, rss_mb, result.returncode)


def export(revision: str, into: Path) -> Path:
    """The `autoscaler` package as of `revision`, unpacked under `into`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "autoscaler"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


@contextmanager
def moto_with_groups(count: int, folder: Path) -> Iterator[dict[str, str]]:
    """moto in this process with `count` ASGs, and one policy file per group in `folder`."""
    from bench.standins import create_asgs, moto_server

    with moto_server() as env:
        create_asgs(env["AWS_ENDPOINT_URL"], count)
        for i in range(count):
            (folder / f"asg{i}.yaml").write_text(
                f"name: asg{i}\ntarget: {{type: aws-asg, asg: asg{i}}}\nmin: 1\nmax: 10\n" + FIXED
            )
        yield env


@contextmanager
def nomad_with_jobs(count: int, folder: Path) -> Iterator[dict[str, str]]:
    """The Nomad API stand-in with `count` jobs, and one policy file per job in `folder`."""
    from tests.support.nomad_api import NomadApiStandIn

    stand_in = NomadApiStandIn()
    stand_in.start()
    try:
        for i in range(count):
            stand_in.register_job(f"job{i}", {"web": 1})
            (folder / f"job{i}.yaml").write_text(
                f"name: job{i}\ntarget: {{type: nomad, job: job{i}, group: web}}\n"
                "min: 1\nmax: 10\n" + FIXED
            )
        yield stand_in.env
    finally:
        stand_in.stop()


def compare(
    title: str,
    count: int,
    *,
    setup: Callable[[int, Path], AbstractContextManager[dict[str, str]]],
    baseline: Path,
    current: Path,
    work: Path,
) -> None:
    folder = work / title
    folder.mkdir()
    print(f"{title}: preparing {count} targets...", file=sys.stderr, flush=True)
    with setup(count, folder) as env:
        before = measure(baseline, folder, env)
        after = measure(current, folder, env)
    print(
        f"{title:<6} {count:>6} {before.seconds:>9.1f} {after.seconds:>9.1f} "
        f"{before.seconds / after.seconds:>7.1f}x {before.rss_mb:>10.0f} {after.rss_mb:>10.0f} "
        f"{before.rss_mb / after.rss_mb:>7.1f}x   exit {before.exit_code}/{after.exit_code}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--asg", type=int, default=1000, help="ASG policies (0: skip)")
    parser.add_argument("--nomad", type=int, default=1000, help="Nomad policies (0: skip)")
    parser.add_argument("--baseline", default="main", help="git revision to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        work = Path(tmp)
        baseline = export(args.baseline, work / "baseline")
        print(f"## `autoscaler plan`: {args.baseline} (before) against this checkout (after)\n")
        print(
            f"{'target':<6} {'count':>6} {'before s':>9} {'after s':>9} {'ratio':>8} "
            f"{'before MB':>10} {'after MB':>10} {'ratio':>8}"
        )
        if args.asg:
            compare(
                "asg", args.asg, setup=moto_with_groups, baseline=baseline, current=ROOT, work=work
            )
        if args.nomad:
            compare(
                "nomad",
                args.nomad,
                setup=nomad_with_jobs,
                baseline=baseline,
                current=ROOT,
                work=work,
            )
    print("\nbefore/after: wall time of the whole command and peak RSS of its process.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
