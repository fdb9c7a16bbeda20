"""The check of the namespaces a list of every namespace leaves out, with probes that stand
for Nomad: a few namespaces asked at once, one round at a time, a bounded wait."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from autoscaler.adapters.discovery import nomad_audit
from autoscaler.adapters.discovery.nomad_audit import PROBERS, NamespaceAudit, Probe


def _audit(probe: Probe, visible: set[str] | None = None) -> NamespaceAudit:
    names = visible if visible is not None else {f"ns-{i:02}" for i in range(40)}
    return NamespaceAudit("jobs", scope=("*",), visible=lambda: names, probe=probe)


def test_no_more_than_probers_namespaces_are_asked_at_once() -> None:
    running, most, lock = 0, 0, threading.Lock()

    def probe(namespace: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.005)
        with lock:
            running -= 1
        return namespace.endswith("7")

    found = _audit(probe).finding(set(), every=300.0, wait=None)
    assert found == ("ns-07", "ns-17", "ns-27", "ns-37")
    assert 1 < most <= PROBERS


def test_a_round_under_way_is_not_started_again_and_its_finding_comes_once_ended() -> None:
    release = threading.Event()
    asked: list[str] = []

    def probe(namespace: str) -> bool:
        asked.append(namespace)
        release.wait(5)
        return True

    audit = _audit(probe, {"default", "team-b"})
    started = time.monotonic()
    assert audit.finding({"default"}, every=0.0, wait=0.05) == ()
    assert audit.finding({"default"}, every=0.0, wait=0.05) == ()  # under way: not waited
    assert time.monotonic() - started < 1.0
    release.set()
    deadline = time.monotonic() + 5
    while audit.finding(None, every=300.0, wait=0.0) != ("team-b",):
        assert time.monotonic() < deadline, "the round's finding never came"
        time.sleep(0.01)
    assert asked == ["team-b"]  # the namespace that showed entries is not asked


def test_a_namespace_not_answered_keeps_what_was_found_before() -> None:
    answers: dict[str, bool | None] = {"a": True, "b": True}
    audit = _audit(answers.get, {"a", "b"})
    assert audit.finding(set(), every=0.0, wait=None) == ("a", "b")
    answers.update(a=None, b=False)
    assert audit.finding(set(), every=0.0, wait=None) == ("a",)


def test_a_round_broken_by_surprise_keeps_the_last_finding_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = False

    def probe(namespace: str) -> bool:
        if broken:
            raise RuntimeError("surprise")
        return True

    audit = _audit(probe, {"a"})
    assert audit.finding(set(), every=0.0, wait=None) == ("a",)
    broken = True
    assert audit.finding(set(), every=0.0, wait=None) == ("a",)
    assert any("failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_closed_audit_asks_no_other_namespace_of_the_round_under_way() -> None:
    release = threading.Event()
    asked: list[str] = []

    def probe(namespace: str) -> bool:
        asked.append(namespace)
        release.wait(5)
        return True

    audit = _audit(probe)  # 40 namespaces, PROBERS asked at once
    assert audit.finding(set(), every=0.0, wait=0.05) == ()
    deadline = time.monotonic() + 5
    while len(asked) < PROBERS:
        assert time.monotonic() < deadline, "the probes never started"
        time.sleep(0.01)
    audit.close()
    release.set()
    while audit.finding(None, every=300.0, wait=0.0) != tuple(sorted(asked)):
        assert time.monotonic() < deadline, "the round never ended"
        time.sleep(0.01)
    assert len(asked) == PROBERS  # only the probes in flight at close()
    assert audit.finding(set(), every=0.0, wait=None) == tuple(sorted(asked))  # no new round
    assert len(asked) == PROBERS


_SLOW_ROUND = """\
    import sys, time
    from autoscaler.adapters.discovery.nomad_audit import NamespaceAudit

    def probe(namespace):
        time.sleep(10.0)  # a Nomad slow to answer there
        return True

    names = {f"ns-{i:02}" for i in range(24)}
    audit = NamespaceAudit("jobs", scope=("*",), visible=lambda: names, probe=probe)
    audit.finding(set(), every=300.0, wait=0.1)
    audit.close()
    print("closed", flush=True)
"""


def test_the_process_exits_at_once_after_close_though_a_round_is_under_way() -> None:
    # A ThreadPoolExecutor's threads are joined at the interpreter's exit, after every
    # probe queued ran: 24 namespaces 10 s slow held the process 30 s after it was done.
    # (The bound leaves room for a slow machine's exit under coverage, which saves its
    # data then.)
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SLOW_ROUND)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(nomad_audit.__file__).parents[3],  # this checkout's package, not another's
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "closed\n"
        closed = time.monotonic()
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
    assert time.monotonic() - closed < 8, "the round held the process's exit"


def test_a_round_whose_thread_cannot_start_fails_nothing_and_is_made_at_the_next_listing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The round was marked under way before its thread started: a thread refused (a limit
    # of processes) failed the listing with the RuntimeError, and no round ever ran again.
    answers = {"a": True}
    audit = _audit(answers.get, {"a"})
    assert audit.finding(set(), every=0.0, wait=None) == ("a",)
    start = threading.Thread.start

    def refused(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refused)
    answers["a"] = False
    assert audit.finding(set(), every=0.0, wait=1.0) == ("a",)  # the last finding stands
    assert any("can't start new thread" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(threading.Thread, "start", start)
    assert audit.finding(set(), every=0.0, wait=None) == ()


def test_a_thread_that_cannot_start_is_warned_of_once_until_a_round_starts_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A warning at every listing: the listings follow Nomad's blocking queries, so a
    # process at its thread limit filled the log with the same line.
    caplog.set_level("INFO", logger=nomad_audit.__name__)
    audit = _audit({"a": True}.get, {"a"})
    start = threading.Thread.start

    def refused(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    def warnings() -> int:
        return sum("can't start new thread" in r.getMessage() for r in caplog.records)

    monkeypatch.setattr(threading.Thread, "start", refused)
    for _ in range(5):
        assert audit.finding(set(), every=0.0, wait=1.0) == ()
    assert warnings() == 1
    monkeypatch.setattr(threading.Thread, "start", start)
    assert audit.finding(set(), every=0.0, wait=None) == ("a",)
    assert any("runs again" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(threading.Thread, "start", refused)
    audit.finding(set(), every=0.0, wait=1.0)
    assert warnings() == 2  # a new failure after it ran again is told again
