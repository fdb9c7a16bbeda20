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
from typing import Any

from autoscaler.redact import PRESCRUBBED, ScrubFilter, scrub

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_log = logging.getLogger("autoscaler")


class JsonFormatter(logging.Formatter):
    """Renders a record and its `extra` fields as one JSON object, on one line.

    Fields are JSON values, never the Python repr of one: an object JSON cannot carry is
    shown as its (scrubbed) text, and a NaN or infinite float as `"NaN"`, `"+Inf"` or
    `"-Inf"` (JSON has no such numbers). Text is written as is (UTF-8), not `\\u` escaped.
    The record's own fields (`time`, `level`, `logger`, `message`, `exception`) win over
    `extra` fields of the same name.
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
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _DROPPED and key not in payload:
                payload[key] = _json_value(value)
        return json.dumps(payload, ensure_ascii=False, allow_nan=False)


def _json_value(value: Any) -> Any:
    """`value` made of JSON types only (see `JsonFormatter`)."""
    kind = type(value)  # the common exact types first: a decision's line has dozens
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else _NON_FINITE[str(value)]
    if kind is list or kind is tuple:
        return [_json_value(v) for v in value]
    if kind is dict:
        return {str(k): _json_value(v) for k, v in value.items()}
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[str(value)]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v) for v in value]
    return scrub(str(value))


# Extra fields that only make sense on a terminal (uvicorn's message with ANSI colours).
# `PRESCRUBBED` marks what needs no scrubbing again; it says nothing to a reader.
_DROPPED = frozenset({"color_message", PRESCRUBBED})
_NON_FINITE = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def setup_logging(level: str, fmt: str) -> None:
    """Configure the root logger once, on stderr, with secrets scrubbed from every record.

    JSON is UTF-8 whatever the locale says, so in JSON mode stderr is switched to UTF-8
    (a lone surrogate, as in a file name that is not UTF-8, becomes a `\\udcXX` escape).
    """
    if fmt == "json" and isinstance(sys.stderr, io.TextIOWrapper):
        sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Uncaught exceptions are logged (so scrubbed) rather than printed as they are."""
    _log.critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    error = args.exc_value if args.exc_value is not None else args.exc_type()
    _log.error("thread %s crashed", name, exc_info=(args.exc_type, error, args.exc_traceback))
