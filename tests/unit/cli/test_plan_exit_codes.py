"""`plan --detailed-exitcode`: 2 only ever means "would scale", however the flag is written;
and a `--state` that names no file is said, not silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.cli.main import main

POLICY = (
    "name: web\ntarget: {type: aws-asg, asg: web, region: eu-west-3}\nmin: 1\nmax: 3\n"
    "checks: [{name: c, strategy: fixed, count: 2}]\n"
)


@pytest.mark.parametrize(
    "flag", ["--detailed-exitcode", "--detailed-exit", "--detailed", "--de", "--d"]
)
def test_a_usage_error_is_1_whatever_the_flag_is_abbreviated_to(
    tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse takes `--detailed` for `--detailed-exitcode`: a usage error exited 2,
    # which the README's `plan --detailed-exitcode || [ $? -eq 2 ]` reads as "would scale".
    policy = tmp_path / "web.yaml"
    policy.write_text(POLICY)
    assert main(["plan", str(policy), "-o", "bogus", flag]) == 1
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_a_state_path_that_names_no_file_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOMAD_ADDR", "http://127.0.0.1:9")  # no Nomad: not evaluated, at once
    policy = tmp_path / "web.yaml"
    policy.write_text(
        POLICY.replace(
            "{type: aws-asg, asg: web, region: eu-west-3}", "{type: nomad, job: web, group: web}"
        )
    )
    missing = tmp_path / "typo.db"
    main(["plan", str(policy), "--state", str(missing), "--nomad-timeout", "0.1"])
    assert f"warning: no state database at {missing}" in capsys.readouterr().err
    assert not missing.exists()  # plan never creates one


def test_an_ambiguous_flag_of_run_is_a_usage_error_even_when_it_looks_like_detailed() -> None:
    # `run --d` (ambiguous: --dry-run, --discovery-interval) was mapped to 1 as plan's
    # --detailed-exitcode would be: systemd restarted on it (it stops on 2 and 4).
    with pytest.raises(SystemExit) as exited:
        main(["run", "--d"])
    assert exited.value.code == 2
