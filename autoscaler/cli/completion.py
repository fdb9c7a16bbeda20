"""`autoscaler completion bash|zsh`: static completion scripts, generated from the parser.

shtab writes the scripts from the argparse parser itself, so every command, flag and
choice completes as soon as it exists, with nothing to run at completion time (no Python
start per TAB). Paths complete as files; `--output` and the like offer their choices.
"""

from __future__ import annotations

import argparse

import shtab

SHELLS = ("bash", "zsh")


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of `parser` (the `autoscaler` command) for `shell`."""
    _complete_files(parser)
    return str(shtab.complete(parser, shell=shell)) + "\n"


def _complete_files(parser: argparse.ArgumentParser) -> None:
    """Arguments whose metavar is FILE or PATH complete as file names."""
    for action in parser._actions:  # argparse offers no public walk over its actions
        if action.metavar in ("FILE", "PATH"):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _complete_files(sub)
