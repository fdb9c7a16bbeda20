"""A path behind a folder this user cannot enter (systemd's DynamicUser keeps state under
root-only /var/lib/private) is a one-line problem with the documented exit code, not a
PermissionError traceback and exit 1 (which systemd restarts for ever)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autoscaler.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
BEHIND = "/srv/locked/autoscaler"


@pytest.fixture(autouse=True)
def _locked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every path under BEHIND answers EACCES, as under a folder without `x` for us."""
    real_stat = os.stat

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).startswith(BEHIND):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)


def test_validate_names_the_path_it_cannot_reach(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", f"{BEHIND}/policies"]) == 1
    assert capsys.readouterr().out == (
        f"{BEHIND}/policies:1: (file): cannot be reached: Permission denied (check the "
        "folders' permissions)\n"
    )


def test_plan_with_a_state_it_cannot_reach_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    policy = str(ROOT / "policies" / "checkout-latency.yaml")
    args = ["plan", policy, "--state", f"{BEHIND}/state.db", "--prometheus-url", "http://x:9"]
    assert main(args) == 4
    assert "cannot reach the state database /srv/locked/autoscaler/state.db: Permission" in (
        capsys.readouterr().err
    )


def test_run_on_policies_it_cannot_reach_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", f"{BEHIND}/policies", "--once", "--state", str(tmp_path / "s.db")]
    assert main(args) == 4
    assert "cannot reach the policy file or folder /srv/locked/autoscaler/policies" in (
        capsys.readouterr().err
    )
