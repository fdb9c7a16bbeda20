"""The service lets a busy worker keep the interpreter lock longer than Python's 5 ms (less
CPU lost handing it between busy workers), and puts Python's setting back when it stops."""

from __future__ import annotations

import sys
from typing import Any, cast

import pytest

from autoscaler.config.service import ServiceConfig
from autoscaler.service import run
from autoscaler.service.controller import switch_threads_less_often


@pytest.fixture
def switch_interval() -> Any:
    saved = sys.getswitchinterval()
    yield
    sys.setswitchinterval(saved)


@pytest.mark.usefixtures("switch_interval")
def test_switching_less_often_sets_the_interval_and_returns_the_one_it_replaces() -> None:
    sys.setswitchinterval(0.005)
    assert switch_threads_less_often(0.02) == pytest.approx(0.005)
    assert sys.getswitchinterval() == pytest.approx(0.02)


def test_the_default_is_twenty_milliseconds() -> None:
    assert ServiceConfig(paths=()).switch_interval == 0.02


@pytest.mark.usefixtures("switch_interval")
def test_the_service_runs_with_its_interval_and_restores_python_s_when_it_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sys.setswitchinterval(0.005)
    seen: list[float] = []

    def serve(*_args: Any) -> int:
        seen.append(sys.getswitchinterval())
        raise RuntimeError("stopped")

    monkeypatch.setattr(run, "_serve", serve)
    monkeypatch.setattr(run, "fix_mmap_threshold", lambda: False)
    monkeypatch.setattr(run, "collect_less_often", lambda: None)
    config = ServiceConfig(paths=(), listen="", switch_interval=0.03)

    with pytest.raises(RuntimeError, match="stopped"):
        run.run_service(config, cast(Any, None), cast(Any, None))

    assert seen == [pytest.approx(0.03)]
    assert sys.getswitchinterval() == pytest.approx(0.005)
