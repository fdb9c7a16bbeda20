"""How the `autoscaler` command ends: the exit codes of validate, plan and run, the one
way an error reaches stderr (scrubbed, after the log lines before it), and a stdout whose
reader left early (`| head`), which ends the output, not the command, or that cannot be
written (a full disk), which ends it with `EXIT_OUTPUT`.

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
EXIT_OUTPUT = 5  # stdout could not be written (a full disk), whatever the command found


def print_error(error: object) -> None:
    """`error: …` on stderr, without any secret the message (or a bad value in it) holds
    nor a terminal escape, after every log line logged before it."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    print(f"error: {printable_lines(scrub(str(error)))}", file=sys.stderr)


class _GuardedStdout:
    """A stdout whose failures end the output, not the command.

    A reader gone (EPIPE: `plan | head -1` once `head` has its line) ends the output
    quietly; any other write error (`plan -o json > /dev/full`: ENOSPC; EIO, EFBIG, a
    quota) is kept in `failure`, for the command to end with one line and
    `EXIT_OUTPUT`. Either way, from then on what is written goes to /dev/null, and the
    command goes on and ends as it would (a plan not evaluated is still 3 under `set -o
    pipefail`); each had ended it with a traceback on the terminal and exit 1, "some
    policy file is invalid".
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.failure: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._failed(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, error: OSError) -> None:
        if not isinstance(error, BrokenPipeError) and self.failure is None:
            self.failure = error
        # The descriptor itself, so that what the stream still holds (and its flush at
        # exit, after this wrapper is gone) goes there too, without another error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Output:
    """What became of the output a `guarded_stdout` block wrote."""

    def __init__(self) -> None:
        self.failure: OSError | None = None

    def failed(self) -> int | None:
        """`EXIT_OUTPUT`, after `error: cannot write the output: …` on stderr, when a
        write failed (a reader gone is no failure); None when the output was written."""
        if self.failure is None:
            return None
        print_error(f"cannot write the output: {self.failure.strerror or self.failure}")
        return EXIT_OUTPUT


@contextmanager
def guarded_stdout() -> Iterator[Output]:
    """While the block runs, a stdout that fails ends the output, not the command
    (`_GuardedStdout`); what the block printed is flushed before it ends, and the `Output`
    yielded says whether any of it could not be written."""
    output = Output()
    stream = sys.stdout
    if stream is None:  # started with stdout closed: print() writes nothing already
        yield output
        return
    guarded = _GuardedStdout(stream)
    sys.stdout = cast(TextIO, guarded)
    try:
        yield output
    finally:
        guarded.flush()
        sys.stdout = stream
        output.failure = guarded.failure
