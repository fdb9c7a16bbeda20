"""How the `autoscaler` command ends: the exit codes of validate, plan and run, and the one
way an error reaches stderr (scrubbed, after the log lines before it).

The codes are listed in `cli.main`'s docstring and in each command's --help (`help_text`).
"""

from __future__ import annotations

import logging
import sys

from autoscaler.redact import scrub

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2  # argparse's own code
EXIT_CHANGES = 2  # `plan --detailed-exitcode` only: some policy would scale
EXIT_NOT_EVALUATED = 3
EXIT_STARTUP = 4


def print_error(error: object) -> None:
    """`error: …` on stderr, without any secret the message (or a bad value in it) holds,
    after every log line logged before it."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    print(f"error: {scrub(str(error))}", file=sys.stderr)
