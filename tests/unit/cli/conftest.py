"""The CLI's health check talks to a real HTTP server: the API tests' stub one. And the
log handlers a command installs (`main` sets up logging on the root logger, writing to
the stderr of that test's capture) are taken down after it: left in place, their last
flush at exit wrote to a capture long closed, and printed a logging error in every run."""

import io
import logging
from collections.abc import Iterator

import pytest

from tests.unit.api.conftest import serve_api

__all__ = ["serve_api"]


@pytest.fixture(autouse=True)
def _log_handlers_taken_down() -> Iterator[None]:
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)
        if isinstance(handler, logging.StreamHandler):
            handler.stream = io.StringIO()  # flushed there from now on (not `setStream`,
            # which flushes the old stream first: the capture may be closed already)
