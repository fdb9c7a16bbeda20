"""A scrape of `/metrics` at 10,000 policies leaves few small-object arenas behind.

Python keeps objects under 512 bytes in 1 MiB arenas, unmapped only once every object in
them is freed. What the text of a scrape holds at once fills arenas; the objects the
evaluations make meanwhile land in them too, and keep them mapped after the scrape, for
as long as those objects live (the service's RSS 5 s after a scrape, README: Performance).
"""

from __future__ import annotations

import re
import subprocess
import sys

# 10,000 policies of one check each, rendered once on a worker thread (as the HTTP server
# does) while another thread evaluates: each evaluation replaces the one kept of its
# policy. Prints nothing; `sys._debugmallocstats` writes the arenas to stderr before the
# scrape and 1 s after it.
SCRAPE = """
import random, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from autoscaler.core.model import Action, CheckResult, Decision
from autoscaler.engine.evaluation import Evaluation
from autoscaler.service.telemetry import Telemetry
N = 10_000
telemetry = Telemetry()
now = datetime.now(UTC)
def evaluation(i):
    check = CheckResult(name="load", query="q", value=random.random(), desired=2, error=None)
    decision = Decision(
        policy=f"asg{i}", target=f"aws-asg:asg{i}", time=now, current=2, desired=2,
        action=Action.NONE, dry_run=False, reasons=("steady",), checks=(check,),
    )
    return Evaluation(
        decision=decision, error=None, error_kind=None, scaled=False,
        duration=random.random() / 10, query_seconds=(("load", random.random() / 20),),
    )
kept = [evaluation(i) for i in range(N)]
for e in kept:
    telemetry.observe(e, at=1.0)
stop = threading.Event()
def evaluate():
    i = 0
    while not stop.is_set():
        kept[i % N] = e = evaluation(i % N)
        telemetry.observe(e, at=time.time())
        i += 1
        if i % 50 == 0:
            time.sleep(0.005)
evaluator = threading.Thread(target=evaluate)
evaluator.start()
time.sleep(1)
sys._debugmallocstats()
ThreadPoolExecutor(1).submit(telemetry.render).result()
time.sleep(1)
sys._debugmallocstats()
stop.set()
evaluator.join()
"""


def _arenas_kept() -> int:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", SCRAPE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    before, after = (
        int(n.replace(",", ""))
        for n in re.findall(r"# arenas allocated current\s*=\s*([\d,]+)", done.stderr)
    )
    return after - before


def test_a_scrape_beside_evaluations_keeps_few_small_object_arenas() -> None:
    kept = _arenas_kept()
    # A list of floats per histogram series (150,000 floats, 10,000 lists each) kept 7 to
    # 8 arenas; one array of the counts, 2.
    assert kept <= 4, kept
