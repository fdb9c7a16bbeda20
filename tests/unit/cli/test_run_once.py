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


@pytest.mark.parametrize("files", [{}, {"web.yaml": "enabled: false\n"}], ids=["empty", "disabled"])
def test_a_single_pass_with_no_enabled_policy_says_so_and_exits_0(
    tmp_path: Path, files: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # A cron `run --once` on the wrong (but existing) folder printed nothing at all, at
    # any log level, and exited 0: as the service's `running 0 policies`, it is said.
    folder = tmp_path / "policies"
    folder.mkdir()
    for name, extra in files.items():
        (folder / name).write_text(
            "name: web\ntarget: {type: nomad, job: web, group: web}\nmin: 1\nmax: 3\n"
            f"checks: [{{name: c, strategy: fixed, count: 2}}]\n{extra}"
        )
    with caplog.at_level(logging.WARNING):
        assert _run(str(folder), "--once", "--state", str(tmp_path / "s.db")) == 0
    # (A new state file also says so, from the state store: not this pass's message.)
    said = [r.getMessage() for r in caplog.records if "state database" not in r.getMessage()]
    assert said == [f"no enabled policy in {folder}: this pass evaluates nothing"]
