"""`autoscaler test`: unit tests for policies, like `promtool test rules`; no server needed.

Exit codes: 0 every test passed; 1 some test failed or some test file (or a policy file it
names) is invalid; 2 bad usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, TextIO

from autoscaler.cli import help_text
from autoscaler.cli.printable import printable
from autoscaler.cli.validate import print_problems
from autoscaler.core.names import counted
from autoscaler.errors import TestFileError

if TYPE_CHECKING:
    from autoscaler.replay.policytest import FileResult

EXIT_OK, EXIT_FAILED = 0, 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `test` on the main parser's subcommands."""
    parser = sub.add_parser(
        "test",
        **help_text.parser_help("test"),
        help="unit tests for policies (like promtool test rules); no server needed",
        description="Run policy test files: given check values over time, assert each "
        "policy's decisions. Exit 0 when all pass, 1 with every failure otherwise.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="test files (YAML)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run `autoscaler test` with parsed arguments; returns the exit code."""
    # Decisions are logged by `run`; a test prints only what failed.
    logging.getLogger("autoscaler.decisions").setLevel(logging.CRITICAL)
    return run_files(args.files, sys.stdout)


def run_files(files: list[str], out: TextIO) -> int:
    """Load and run every file, printing problems, failures and a summary per file."""
    # Imported when tests run, not with the `autoscaler` command's parser.
    from autoscaler.replay.policytest import run_file  # noqa: PLC0415
    from autoscaler.replay.testfile import load_test_file  # noqa: PLC0415

    results: list[FileResult] = []
    invalid = 0
    for file in files:
        try:
            test_file = load_test_file(file)
        except TestFileError as exc:
            invalid += 1
            print_problems(exc.problems, out)
            print(printable(f"{file}: invalid, not run"), file=out)
            continue
        result = run_file(test_file)
        results.append(result)
        for failure in result.failures:
            # Test and policy names, expected reasons: whatever the test file holds.
            first, *rest = failure.lines()
            for line in (f"FAILED {first}", *rest):
                print(printable(line), file=out)
        print(printable(_summary(result)), file=out)
    if len(files) > 1:
        tests = sum(r.tests for r in results)
        failed = sum(len(r.failed_tests) for r in results)
        print(
            f"{counted(len(files), 'file')} ({invalid} invalid): {counted(tests, 'test')}, "
            f"{tests - failed} passed, {failed} failed",
            file=out,
        )
    ok = not invalid and all(r.ok for r in results)
    return EXIT_OK if ok else EXIT_FAILED


def _summary(result: FileResult) -> str:
    counts = f"{counted(result.tests, 'test')}, {counted(result.expectations, 'expectation')}"
    if result.ok:
        return f"{result.file}: {counts}: all passed"
    return (
        f"{result.file}: {counts}: {counted(len(result.failed_tests), 'test')} failed "
        f"({counted(len(result.failures), 'expectation')} not met)"
    )
