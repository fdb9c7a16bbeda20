"""`--log-format json`: one JSON object per line, flat fields of JSON types (never a Python
repr), the decision's check values as `check.<name>.*`, UTF-8 as is, secrets scrubbed."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler import redact
from autoscaler.cli.logs import BatchingHandler, JsonFormatter, _json_value
from autoscaler.core.model import Action, CheckResult, Decision, ForecastReading
from autoscaler.engine.decision_log import log_decision
from autoscaler.engine.evaluation import Evaluation
from tests.support.fuzz import fuzz_settings

DECISION = Decision(
    policy="checkout",
    target="aws-asg:web@eu-west-3",
    time=datetime(2026, 11, 27, 9, 14, 3, tzinfo=UTC),
    current=4,
    desired=6,
    action=Action.UP,
    dry_run=False,
    reasons=("p95: 0.41 / 0.25 → 7", "limit up +2: 7 capped to 6"),
    checks=(
        CheckResult(name="p95", query="q1", value=0.41, desired=7, error=None),
        CheckResult(name="queue.depth", query="q2", value=None, desired=None, error="no series"),
    ),
)


def _strict(text: str) -> dict[str, Any]:
    """Parse as a strict JSON consumer would: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return dict(json.loads(text, parse_constant=refuse))


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines through the scrubber, as `setup_logging` wires it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(redact.ScrubFilter())
    logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, out
    logger.removeHandler(handler)


@pytest.fixture
def decisions_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What `log_decision` writes, as JSON lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(redact.ScrubFilter())
    logger = logging.getLogger("autoscaler.decisions")
    level = logger.level
    monkeypatch.setattr(logger, "propagate", False)
    # setLevel, not the attribute: it also clears `isEnabledFor`'s cache, which still says
    # "disabled" after an earlier test in this process ran a replay (`quiet_decisions`).
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_decision_is_flat_fields_with_each_checks_value(decisions_log: io.StringIO) -> None:
    log_decision(Evaluation(decision=DECISION))
    line = decisions_log.getvalue()
    assert line.count("\n") == 1
    record = _strict(line)
    assert record["logger"] == "autoscaler.decisions"
    assert record["level"] == "info"
    flat = {k: v for k, v in record.items() if k not in {"time", "level", "logger", "message"}}
    assert flat.pop("decision") == {  # the earlier shape, kept for existing pipelines
        "time": "2026-11-27T09:14:03+00:00",
        "policy": "checkout",
        "target": "aws-asg:web@eu-west-3",
        "current": 4,
        "desired": 6,
        "action": "up",
        "dry_run": False,
        "reasons": list(DECISION.reasons),
    }
    assert flat == {
        "decision_time": "2026-11-27T09:14:03+00:00",
        "policy": "checkout",
        "target": "aws-asg:web@eu-west-3",
        "current": 4,
        "desired": 6,
        "action": "up",
        "dry_run": False,
        "reasons": list(DECISION.reasons),
        "check.p95.value": 0.41,
        "check.p95.desired": 7,
        "check.queue.depth.value": None,
        "check.queue.depth.desired": None,
        "check.queue.depth.error": "no series",
    }


def test_a_decisions_non_finite_numbers_are_json_text(decisions_log: io.StringIO) -> None:
    """A decision's line is written without converting its fields one by one (they are
    JSON values from the start): a NaN or infinite number must be made text there."""
    forecast = ForecastReading(value=math.inf, lead=timedelta(minutes=2), error=math.nan)
    odd = replace(
        DECISION,
        checks=(
            CheckResult(
                name="p95", query="q", value=math.nan, desired=None, error=None, forecast=forecast
            ),
        ),
    )
    log_decision(Evaluation(decision=odd))
    record = _strict(decisions_log.getvalue())  # strict: no NaN or Infinity literal
    assert record["check.p95.value"] == "NaN"
    assert record["check.p95.forecast.value"] == "+Inf"
    assert record["check.p95.forecast.error"] == "NaN"
    assert record["check.p95.forecast.lead_seconds"] == 120.0
    assert "autoscaler_json_ready" not in record and "autoscaler_prescrubbed" not in record


def test_a_failed_evaluation_carries_its_error_and_kind(decisions_log: io.StringIO) -> None:
    log_decision(Evaluation(decision=DECISION, error="Prometheus unreachable", error_kind="source"))
    record = _strict(decisions_log.getvalue())
    assert record["level"] == "warning"
    assert (record["error"], record["error_kind"]) == ("Prometheus unreachable", "source")
    legacy = record["decision"]  # the earlier shape: the error, not its kind, last
    assert list(legacy)[-1] == "error" and legacy["error"] == "Prometheus unreachable"
    assert "error_kind" not in legacy and "decision_time" not in legacy


def test_text_is_written_as_is_not_escaped(decisions_log: io.StringIO) -> None:
    log_decision(Evaluation(decision=DECISION))
    line = decisions_log.getvalue()
    assert "0.25 → 7" in line
    assert "\\u2192" not in line


def test_no_field_is_a_python_repr(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = json_log
    logger.info(
        "odd values",
        extra={
            "ratio": float("nan"),
            "ceiling": float("inf"),
            "floor": float("-inf"),
            "labels": {"team": "checkout", 3: ("a", "b")},
            "names": frozenset({"web"}),
            "when": datetime(2026, 1, 2, tzinfo=UTC),
            "color_message": "\x1b[32mINFO\x1b[0m",
        },
    )
    record = _strict(out.getvalue())
    assert (record["ratio"], record["ceiling"], record["floor"]) == ("NaN", "+Inf", "-Inf")
    assert record["labels"] == {"team": "checkout", "3": ["a", "b"]}
    assert record["names"] == ["web"]
    assert record["when"] == "2026-01-02 00:00:00+00:00"
    assert "color_message" not in record


def test_what_the_fast_encoder_refuses_is_still_one_compact_json_line() -> None:
    # orjson writes lines; it refuses text that is not UTF-8 (a file name's lone
    # surrogate) and integers beyond 64 bits, which the standard library then writes.
    # (In a process of its own: pytest-xdist cannot carry a lone surrogate back.)
    script = (
        "import logging; from autoscaler.cli.logs import setup_logging; "
        "setup_logging('info', 'json'); logging.getLogger('t').info("
        "'reading %s', 'p\\udcffolicy.yaml', extra={'big': 2**70, 'ratio': 0.5})"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True
    )
    line = done.stderr.decode("utf-8")
    assert line.count("\n") == 1 and '", "' not in line  # compact, as every other line
    assert b'"message":"reading p\\udcffolicy.yaml"' in done.stderr  # stderr's escape
    record = _strict(line)
    assert (record["big"], record["ratio"]) == (2**70, 0.5)


def test_extra_fields_cannot_hide_the_records_own(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = json_log
    logger.warning("real message", extra={"level": "debug", "time": "never", "logger": "x"})
    record = _strict(out.getvalue())
    assert (record["level"], record["logger"]) == ("warning", logger.name)
    assert record["time"].startswith("20")


def test_check_errors_are_scrubbed_like_every_field(decisions_log: io.StringIO) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    redact.register(secret)
    leaky = CheckResult(name="p95", query="q", value=None, desired=None, error=f"401 {secret}")
    decision = replace(DECISION, checks=(leaky,))
    log_decision(Evaluation(decision=decision))
    line = decisions_log.getvalue()
    assert secret not in line
    assert _strict(line)["check.p95.error"] == "401 ***"


def test_policy_and_target_names_are_scrubbed_too(decisions_log: io.StringIO) -> None:
    # A decision's line skips the filter's field-by-field scrub: every text of it, the
    # names from the policy file included, is scrubbed as the line is made.
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    redact.register(secret)
    named = replace(DECISION, policy=f"web-{secret}", target=f"nomad:{secret}/web")
    log_decision(Evaluation(decision=named))
    line = decisions_log.getvalue()
    assert secret not in line
    record = _strict(line)
    assert (record["policy"], record["decision"]["target"]) == ("web-***", "nomad:***/web")
    assert "policy=web-*** target=nomad:***/web" in record["message"]
    assert redact.PRESCRUBBED not in record


def test_json_logs_are_utf8_whatever_the_locale_says() -> None:
    """A Latin-1 stderr would write `é` as one byte (not UTF-8) and `→` as `\\u2192`."""
    script = (
        "import logging; from autoscaler.cli.logs import setup_logging; "
        "setup_logging('info', 'json'); logging.getLogger('t').info('café → 7')"
    )
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, env=env, timeout=60, check=True
    )
    record = _strict(done.stderr.decode("utf-8"))
    assert record["message"] == "café → 7"
    assert "café → 7".encode() in done.stderr


def test_a_traceback_is_one_field_of_the_line() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())  # alone: the formatter renders the traceback
    logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        raise ValueError("bad value ✗")
    except ValueError:
        logger.exception("it failed")
    line = out.getvalue()
    assert line.count("\n") == 1
    record = _strict(line)
    assert record["message"] == "it failed"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert record["exception"].endswith("ValueError: bad value ✗")


def test_crashes_outside_any_handler_are_logged_as_json_lines() -> None:
    """An uncaught exception, in the main thread or another, is a JSON record (scrubbed),
    not Python's raw traceback on stderr; a thread ending with SystemExit is no crash."""
    script = """
import sys, threading
from autoscaler.cli.logs import setup_logging
setup_logging("info", "json")
def crash():
    raise RuntimeError("worker broke")
def leave():
    sys.exit(0)
for target, name in [(crash, "worker"), (leave, "quitter")]:
    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join()
raise KeyError("main broke")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 1
    records = [_strict(line) for line in done.stderr.decode().splitlines()]
    assert [(r["level"], r["message"]) for r in records] == [
        ("error", "thread worker crashed"),
        ("critical", "uncaught exception"),
    ]
    assert records[0]["exception"].endswith("RuntimeError: worker broke")
    assert records[1]["exception"].endswith("KeyError: 'main broke'")


# --- the service's batching handler ---------------------------------------------------


def _batching(delay: float) -> tuple[logging.Logger, io.StringIO, BatchingHandler]:
    out = io.StringIO()
    handler = BatchingHandler(out, delay=delay)
    logger = logging.getLogger(f"test.logs.batch.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, out, handler


def test_info_lines_wait_and_a_warning_writes_them_all_in_order() -> None:
    logger, out, handler = _batching(delay=60.0)
    logger.info("one")
    logger.info("two")
    assert out.getvalue() == ""  # waiting for the writer
    logger.warning("three")  # at once, after what came before it
    assert out.getvalue().splitlines() == ["one", "two", "three"]
    logger.removeHandler(handler)


def test_info_lines_are_written_within_the_delay() -> None:
    logger, out, handler = _batching(delay=0.02)
    logger.info("decision")
    deadline = time.monotonic() + 10
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.getvalue() == "decision\n"
    logger.removeHandler(handler)


class _StuckStream(io.StringIO):
    """A stream whose first write blocks until `go` is set (a full pipe, a slow disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.stuck = threading.Event()
        self.go = threading.Event()

    def write(self, text: str) -> int:
        if not self.stuck.is_set():
            self.stuck.set()
            assert self.go.wait(10)
        return super().write(text)


def test_a_logger_does_not_wait_for_a_batch_being_written() -> None:
    stream = _StuckStream()
    handler = BatchingHandler(stream, delay=0.0)
    logger = logging.getLogger(f"test.logs.batch.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.info("first")
    assert stream.stuck.wait(10)  # the writer is inside the stream's write
    logged = threading.Thread(target=logger.info, args=("second",))
    logged.start()
    logged.join(5)
    assert not logged.is_alive()  # queued without waiting for the stream
    stream.go.set()
    logger.warning("third")  # written at once, after the batches before it, in order
    assert stream.getvalue().splitlines() == ["first", "second", "third"]
    logger.removeHandler(handler)


def _batched(handler: BatchingHandler) -> logging.Logger:
    logger = logging.getLogger(f"test.logs.batch.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def test_a_warning_waits_for_a_stalled_stream_only_so_long() -> None:
    # A log collector that stopped reading stderr: the writer is stuck in `write`. A
    # decision logged as a warning (an evaluation with an error) must not stop its worker.
    stream = _StuckStream()
    logger = _batched(BatchingHandler(stream, delay=0.0, warning_wait=0.2))
    logger.info("first")
    assert stream.stuck.wait(10)
    warned = threading.Thread(target=logger.warning, args=("second",))
    started = time.monotonic()
    warned.start()
    warned.join(5)
    assert not warned.is_alive() and time.monotonic() - started < 2
    stream.go.set()
    logger.warning("third")  # the stream takes writes again: written at once, in order
    assert stream.getvalue().splitlines() == ["first", "second", "third"]


def test_lines_waiting_for_a_stalled_stream_are_bounded_and_their_loss_is_said() -> None:
    stream = _StuckStream()
    logger = _batched(BatchingHandler(stream, delay=0.0, max_lines=3))
    logger.info("first")
    assert stream.stuck.wait(10)
    for n in range(10):
        logger.info("line %d", n)
    stream.go.set()
    logger.warning("after")
    assert stream.getvalue().splitlines() == [
        "first",
        "8 log lines were dropped: the log stream did not take them in time",
        "line 8",
        "line 9",
        "after",
    ]


def test_the_service_writes_its_last_lines_when_it_exits() -> None:
    script = """
import logging
from autoscaler.cli.logs import setup_logging
setup_logging("info", "json", batched=True)
logging.getLogger().handlers[0]._delay = 600  # only the flush at exit can write it
logging.getLogger("autoscaler.decisions").info("last decision")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0
    assert [_strict(line)["message"] for line in done.stderr.decode().splitlines()] == [
        "last decision"
    ]


def _reference_json_value(value: Any) -> Any:
    """`_json_value` as it was written before its fast paths: the behaviour they keep."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return (
            value
            if math.isfinite(value)
            else {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[str(value)]
        )
    if isinstance(value, Mapping):
        return {str(k): _reference_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_reference_json_value(v) for v in value]
    return redact.scrub(str(value))


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from([Action.UP, datetime(2026, 1, 2, tzinfo=UTC), b"raw"]),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.frozensets(st.integers(), max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=4),
    ),
    max_leaves=16,
)


@given(_values)
@fuzz_settings(ci=300)
def test_every_extra_value_is_rendered_as_it_always_was(value: Any) -> None:
    assert _json_value(value) == _reference_json_value(value)
