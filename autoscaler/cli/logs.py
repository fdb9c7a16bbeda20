"""Logging set-up: human text by default, one JSON object per line with `--log-format json`.

Every record of every logger goes through `redact.ScrubFilter` on its way out (message,
traceback, `extra` fields), and so do uncaught exceptions, in the main thread or another:
no known secret reaches the log, whatever library produced the text.
"""

from __future__ import annotations

import io
import json
import logging
import math
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

import orjson

from autoscaler.cli.printable import json_safe, printable, printable_lines
from autoscaler.engine.decision_log import JSON_READY, NON_FINITE
from autoscaler.redact import PRESCRUBBED, ScrubFilter, scrub

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_log = logging.getLogger("autoscaler")


class JsonFormatter(logging.Formatter):
    """Renders a record and its `extra` fields as one JSON object, on one line.

    Fields are JSON values, never the Python repr of one: an object JSON cannot carry is
    shown as its (scrubbed) text, and a NaN or infinite float as `"NaN"`, `"+Inf"` or
    `"-Inf"` (JSON has no such numbers). Text is written as is (UTF-8), not `\\u` escaped,
    but for the controls a terminal or a log viewer might obey (`json_safe`).
    The record's own fields (`time`, `level`, `logger`, `message`, `exception`) win over
    `extra` fields of the same name.

    Lines are compact (no space after `:` or `,`), written by orjson: a service logs a
    line per decision, and the standard library's encoder was a tenth of its CPU at 10,000
    targets. What orjson refuses (an integer beyond 64 bits, text that is not UTF-8, as a
    file name may be) is written by the standard library's, in the same compact form.
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        ready = getattr(record, JSON_READY, False)  # a decision's line: JSON values already
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _DROPPED and key not in payload:
                payload[key] = value if ready else _json_value(value)
        try:
            line = orjson.dumps(payload).decode()
        except orjson.JSONEncodeError:
            line = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return json_safe(line)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER: message`, one line per record (then its traceback, if any), with
    every control character of the message escaped (`printable`): a target's name or a
    server's error may hold a line break, which forged a log line, or an escape sequence,
    which the operator's terminal ran. A traceback keeps its line breaks, nothing else."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        # The traceback as `ScrubFilter` left it (formatted and scrubbed), or formatted here.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = printable_lines(record.exc_text)
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return printable(super().formatMessage(record))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return printable_lines(super().formatStack(stack_info))


def _json_value(value: Any) -> Any:
    """`value` made of JSON types only (see `JsonFormatter`)."""
    kind = type(value)  # the common exact types first: a decision's line has dozens
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else NON_FINITE[str(value)]
    if kind is list or kind is tuple:
        return [_json_value(v) for v in value]
    if kind is dict:
        return {str(k): _json_value(v) for k, v in value.items()}
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else NON_FINITE[str(value)]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v) for v in value]
    return scrub(str(value))


# Extra fields that only make sense on a terminal (uvicorn's message with ANSI colours).
# `PRESCRUBBED` marks what needs no scrubbing again, `JSON_READY` what needs no converting;
# they say nothing to a reader.
_DROPPED = frozenset({"color_message", PRESCRUBBED, JSON_READY})


def setup_logging(level: str, fmt: str, *, batched: bool = False) -> None:
    """Configure the root logger once, on stderr, with secrets scrubbed from every record.

    JSON is UTF-8 whatever the locale says, so in JSON mode stderr is switched to UTF-8
    (a lone surrogate, as in a file name that is not UTF-8, becomes a `\\udcXX` escape).
    `batched` (the service): info lines are written in batches (`BatchingHandler`).
    """
    if fmt == "json" and isinstance(sys.stderr, io.TextIOWrapper):
        sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace")
    handler: logging.StreamHandler[TextIO] = (
        BatchingHandler(sys.stderr) if batched else logging.StreamHandler(sys.stderr)
    )
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(ScrubFilter())
    # Neither format shows a record's source file, line or function: skip looking them up
    # (a walk up the stack per record; the logging HOWTO's "Optimization" knob).
    logging._srcfile = None
    # Nor a record's thread or process: skip finding them out as well (the same knobs).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_crash


class BatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes info and debug lines in batches, at most `delay`
    seconds after they were logged, and a warning or worse at once (with every line
    before it, in order).

    The service logs a line per decision, from several workers: one write and flush per
    line made each worker give up the interpreter lock and wait to get it back, about a
    thousand times a second at 10,000 targets. Lines are filtered and formatted by the
    thread that logs them (a record is only read then) and queued under the handler's
    lock; one writer thread writes them (under a lock of its own, so batches stay in
    order). A warning wakes the writer at once and waits until its line is written, but
    never longer than `warning_wait` seconds: a stream that does not take what is
    written (a log collector that stopped reading a full pipe) must not stop the
    evaluation that logged it. While the stream stalls, at most `max_lines` lines wait;
    the oldest are dropped beyond that, and a line saying how many goes out first once
    the stream takes writes again. `flush` (also called at exit, by `logging.shutdown`)
    writes what waits; a SIGKILL loses at most the last `delay` seconds of info lines.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        delay: float = 0.05,
        warning_wait: float = 1.0,
        max_lines: int = 20_000,
    ) -> None:
        super().__init__(stream)
        self._delay = delay
        self._warning_wait = warning_wait
        self._max_lines = max(1, max_lines)
        self._lines: list[str] = []
        self._queued = 0  # lines queued so far (a warning waits for its number)
        self._dropped = 0  # lines dropped since the last write
        self._written = 0  # lines written (or dropped) so far
        self._done = threading.Condition()  # notified after each write
        self._waiting = threading.Event()  # set while lines wait for the writer
        self._urgent = threading.Event()  # set by a warning: no `delay` for this batch
        self._writer: threading.Thread | None = None
        self._io = threading.Lock()  # held while a batch is written: they stay in order

    def handle(self, record: logging.LogRecord) -> bool:
        kept = self.filter(record)
        if isinstance(kept, logging.LogRecord):  # Python 3.12: a filter may return a record
            record = kept
        if not kept:
            return False
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return True
        with self.lock:  # type: ignore[union-attr]
            if len(self._lines) >= self._max_lines:
                del self._lines[0]  # the stream stalls: the oldest line goes
                self._dropped += 1
            self._lines.append(line)
            self._queued += 1
            mine = self._queued
            if self._writer is None:
                self._writer = threading.Thread(target=self._write, name="log-writer", daemon=True)
                self._writer.start()
        if record.levelno >= logging.WARNING:
            self._urgent.set()
            self._waiting.set()
            with self._done:
                self._done.wait_for(lambda: self._written >= mine, timeout=self._warning_wait)
        elif not self._waiting.is_set():  # `set` takes a lock and notifies, every time
            self._waiting.set()
        return True

    def _write(self) -> None:
        while True:
            self._waiting.wait()
            # Lets the lines of the next `delay` join this write, unless a warning waits.
            # An event's timed wait rather than `time.sleep`: under libfaketime (a clock
            # set ahead, as tests and some test environments use) `sleep`'s absolute
            # monotonic deadline never came.
            self._urgent.wait(self._delay)
            self._urgent.clear()
            self._waiting.clear()
            self.flush()

    def flush(self) -> None:
        with self._io:
            with self.lock:  # type: ignore[union-attr]
                lines, self._lines = self._lines, []
                dropped, self._dropped = self._dropped, 0
                upto = self._queued
            if dropped:
                lines.insert(
                    0,
                    f"{dropped} log lines were dropped: the log stream did not take them in time",
                )
            try:
                if lines:
                    self.stream.write(self.terminator.join(lines) + self.terminator)
                self.stream.flush()
            except Exception:
                # Reported as `logging` reports a failed write (once per batch).
                self.handleError(logging.makeLogRecord({"msg": lines[0] if lines else ""}))
            with self._done:
                self._written = max(self._written, upto)
                self._done.notify_all()


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Uncaught exceptions are logged (so scrubbed) rather than printed as they are."""
    _log.critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    error = args.exc_value if args.exc_value is not None else args.exc_type()
    _log.error("thread %s crashed", name, exc_info=(args.exc_type, error, args.exc_traceback))
