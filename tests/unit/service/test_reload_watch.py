"""The reload watcher: a failure that repeats (a policy folder that became unreadable) is
logged with its traceback once, not at every check, and its end is said."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autoscaler.service import run
from autoscaler.service.registry import PolicyRegistry
from autoscaler.service.run import _watch
from tests.support.net import wait_until


class _Registry:
    def __init__(self) -> None:
        self.checks = 0
        self.failing = True

    def changed_on_disk(self) -> bool:
        self.checks += 1
        if self.failing:
            raise PermissionError(13, "Permission denied", "/etc/autoscaler/policies")
        return False


class _Controller:
    def __init__(self) -> None:
        self.registry = _Registry()

    def reload(self) -> Any:
        return None

    def tidy(self) -> None:
        self.tidied = getattr(self, "tidied", 0) + 1


def test_a_repeated_failure_is_logged_once_and_its_end_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="autoscaler")
    controller = _Controller()
    wake, hup, stopping = threading.Event(), threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(controller, 0.01, wake, hup, stopping), daemon=True
    )
    watcher.start()
    try:
        wait_until(lambda: controller.registry.checks >= 20, timeout=5, what="20 checks")
        controller.registry.failing = False
        wait_until(lambda: "works again" in caplog.text, timeout=5, what="the end of the failure")
    finally:
        stopping.set()
        wake.set()
        watcher.join(5)
    failures = [r for r in caplog.records if r.message.startswith("reloading the policies failed")]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert "PermissionError" in caplog.text


def test_an_interval_beyond_what_a_thread_can_wait_still_reloads_on_sighup() -> None:
    # Before, Event.wait(1e10) raised OverflowError at once and the watcher was gone.
    controller = _Controller()
    controller.registry.failing = False
    reloads: list[int] = []
    controller.reload = lambda: reloads.append(1)  # type: ignore[method-assign]
    wake, hup, stopping = threading.Event(), threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(controller, 1e10, wake, hup, stopping), daemon=True
    )
    watcher.start()
    try:
        hup.set()
        wake.set()
        wait_until(lambda: reloads == [1], timeout=5, what="a reload on SIGHUP")
        assert watcher.is_alive()
    finally:
        stopping.set()
        wake.set()
        watcher.join(5)
    assert not watcher.is_alive()


def test_waking_to_tidy_does_not_look_at_the_files_more_often_than_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The watcher wakes at least once per tidying period (an hour) to drop removed
    # policies' state; with a longer --reload-interval the files were then looked at
    # every hour instead of at the interval asked for.
    monkeypatch.setattr(run, "TIDY_EVERY", 0.02)
    controller = _Controller()
    controller.registry.failing = False
    wake, hup, stopping = threading.Event(), threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(controller, 0.5, wake, hup, stopping), daemon=True
    )
    started = time.monotonic()
    watcher.start()
    try:
        wait_until(lambda: getattr(controller, "tidied", 0) >= 10, timeout=5, what="tidyings")
        looked, elapsed = controller.registry.checks, time.monotonic() - started
    finally:
        stopping.set()
        wake.set()
        watcher.join(5)
    assert looked <= elapsed / 0.5 + 1, (looked, elapsed)


_POLICY = """\
name: web
target: {type: aws-asg, asg: web}
checks:
  - {name: c, strategy: fixed, count: 2}
min: 1
max: %d
"""


class _Reloading:
    """A controller reduced to what the watcher calls, on a real registry: each reload
    records the `max` of `web` it put in force (None: no such policy)."""

    def __init__(self, folder: Path) -> None:
        self.registry = PolicyRegistry([str(folder)])
        self.seen: list[int | None] = []
        self.reload()

    def reload(self) -> None:
        self.registry.reload()
        web = self.registry.get("web")
        self.seen.append(None if web is None else web.max)

    def tidy(self) -> None:
        pass


def _half_written(file: Path) -> None:
    # Written in place (an editor that does, `cp`, `kubectl cp`), read between two writes:
    # cut after "max: 1", it is valid YAML that scales the group in to 1 at once.
    text = _POLICY % 12
    with open(file, "w") as out:
        out.write(text[:-2])
        out.flush()
        time.sleep(0.3)
        out.write(text[-2:])


def _saved_as_vim_does(file: Path) -> None:
    # vim's default save: the file renamed to its backup, then written anew; read between
    # the two, the policy is gone.
    file.rename(file.with_name(file.name + "~"))
    time.sleep(0.3)
    file.write_text(_POLICY % 12)
    file.with_name(file.name + "~").unlink()


@pytest.mark.parametrize("write", [_half_written, _saved_as_vim_does])
def test_a_change_seen_while_it_is_written_is_read_only_once_whole(
    tmp_path: Path, write: Callable[[Path], None]
) -> None:
    # Polled every 50 ms, the watcher read the file mid-write: `max: 1` was put in force
    # (or `web` removed) until the next check.
    (tmp_path / "web.yaml").write_text(_POLICY % 10)
    controller = _Reloading(tmp_path)
    wake, hup, stopping = threading.Event(), threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(controller, 0.05, wake, hup, stopping), daemon=True
    )
    watcher.start()
    try:
        write(tmp_path / "web.yaml")
        wait_until(lambda: controller.seen[-1] == 12, timeout=10, what="the new version")
    finally:
        stopping.set()
        wake.set()
        watcher.join(5)
    assert set(controller.seen) == {10, 12}, controller.seen
