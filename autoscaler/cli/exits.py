"""How the `autoscaler` command ends: the exit codes of validate, plan and run, the one
way an error reaches stderr (scrubbed, after the log lines before it), and a stdout whose
reader left early (`| head`), which ends the output, not the command.

The codes are listed in `cli.main`'s docstring and in each command's --help (`help_text`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO, cast

from autoscaler.cli.printable import printable_lines
from autoscaler.redact import scrub

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2  # argparse's own code
EXIT_CHANGES = 2  # `plan --detailed-exitcode` only: some policy would scale
EXIT_NOT_EVALUATED = 3
EXIT_STARTUP = 4


def print_error(error: object) -> None:
    """`error: …` on stderr, without any secret the message (or a bad value in it) holds
    nor a terminal escape, after every log line logged before it."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    print(f"error: {printable_lines(scrub(str(error)))}", file=sys.stderr)


class _ReaderMayLeave:
    """A stdout that takes a reader gone (EPIPE: `plan | head -1` once `head` has its
    line) as the end of the output: from then on what is written goes to /dev/null.

    The command goes on and ends with its own exit code (a plan not evaluated is still 3
    under `set -o pipefail`); a `BrokenPipeError` had ended it with a traceback on the
    terminal and exit 1, "some policy file is invalid". Anything else is the stream's own.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        # The descriptor itself, so that what the stream still holds (and its flush at
        # exit, after this wrapper is gone) goes there too, without another error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def reader_may_leave() -> Iterator[None]:
    """While the block runs, a stdout whose reader has gone ends the output quietly
    (`_ReaderMayLeave`); what the block printed is flushed before it ends."""
    stream = sys.stdout
    if stream is None:  # started with stdout closed: print() writes nothing already
        yield
        return
    guarded = _ReaderMayLeave(stream)
    sys.stdout = cast(TextIO, guarded)
    try:
        yield
    finally:
        guarded.flush()
        sys.stdout = stream
