"""Logging set-up: human text by default, one JSON object per line with `--log-format json`.

Every record of every logger goes through `redact.ScrubFilter` on its way out (message,
traceback, `extra` fields), and so do uncaught exceptions, in the main thread or another:
no known secret reaches the log, whatever library produced the text.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from autoscaler.redact import ScrubFilter, scrub

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_log = logging.getLogger("autoscaler")


class JsonFormatter(logging.Formatter):
    """Renders a record and its `extra` fields as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                payload[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        # Objects JSON cannot encode are shown as their (scrubbed) text.
        return json.dumps(payload, default=lambda value: scrub(str(value)))


def setup_logging(level: str, fmt: str) -> None:
    """Configure the root logger once, on stderr, with secrets scrubbed from every record."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ScrubFilter())
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
