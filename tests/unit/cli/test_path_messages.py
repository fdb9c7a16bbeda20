"""A policy path that does not exist, given as a relative path, says where it was looked
for: the working directory, also for a config file's `policies: [policies]` (not the
config file's folder), which under systemd is `/`."""

from __future__ import annotations

import io
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.cli.main import main
from autoscaler.cli.validate import cmd_validate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`run` ignores SIGHUP until the service is up: not beyond the test."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    before = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, before)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file naming `policies: [policies]`, beside its `policies/` folder, and a
    working directory elsewhere; returns the working directory."""
    (tmp_path / "etc" / "policies").mkdir(parents=True)
    (tmp_path / "etc" / "autoscaler.yaml").write_text("policies: [policies]\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_validate_says_a_relative_path_is_taken_from_the_working_directory(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "--config", "../etc/autoscaler.yaml"]) == 1
    assert capsys.readouterr().out == (
        "policies:1: (file): no such file or folder (a relative path is taken from the "
        f"working directory, {elsewhere})\n"
    )


def test_run_says_a_relative_path_is_taken_from_the_working_directory(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--config", "../etc/autoscaler.yaml", "--once", "--state", "s.db"]
    assert main(args) == 4
    assert capsys.readouterr().err == (
        "error: no such policy file or folder: policies (a relative path is taken from the "
        f"working directory, {elsewhere})\n"
    )


def test_an_absolute_path_that_does_not_exist_is_named_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo"
    assert main(["validate", str(missing)]) == 1
    assert capsys.readouterr().out == f"{missing}:1: (file): no such file or folder\n"
    assert main(["run", str(missing), "--once", "--state", str(tmp_path / "s.db")]) == 4
    assert capsys.readouterr().err == f"error: no such policy file or folder: {missing}\n"


def test_validate_exits_1_for_a_link_to_nothing(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(
        "name: web\ntarget: {type: nomad, job: web, group: web}\nmin: 1\nmax: 5\n"
        "checks:\n  - {name: c, strategy: fixed, count: 2}\n"
    )
    (tmp_path / "api.yaml").symlink_to("/nowhere/api.yaml")
    out = io.StringIO()
    assert cmd_validate([str(tmp_path)], out) == 1
    assert out.getvalue().startswith(
        f"{tmp_path / 'api.yaml'}:1: (file): cannot read the file: a symbolic link to "
        "/nowhere/api.yaml, which does not exist\n"
    ), out.getvalue()
