"""`run --once` takes the options of `run` that still mean something for one pass, and
checks them as `run` does."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.cli.exits import EXIT_STARTUP
from autoscaler.cli.main import build_parser
from autoscaler.cli.run import cmd_run
from autoscaler.config.connections import settings_from_args
from autoscaler.config.options import parsed_options, resolve


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`cmd_run` ignores SIGHUP until the service is up: not beyond the test. Its errors
    flush the root logger's handlers: not those an earlier test's `main` left on a
    stream that is closed now."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    before = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, before)


def _run(*argv: str) -> int:
    """`autoscaler run ARGV` without the process-wide logging set-up of `main`."""
    args = build_parser().parse_args(["run", *argv])
    resolve(args, parsed_options(args), {}, {})
    return cmd_run(args, settings_from_args(args))


def test_a_single_pass_refuses_a_bad_notification_url_as_run_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, --once took any --notify-url (and never sent to it).
    url = "ftp://hooks.example/T0/secret"
    state = str(tmp_path / "s.db")
    assert _run(str(tmp_path), "--once", "--state", state, f"--notify-url={url}") == EXIT_STARTUP
    err = capsys.readouterr().err
    assert "--notify-url: a notification URL must be http:// or https://" in err
    assert "secret" not in err
