"""A config-file key a variable or a flag overrides is said, not silently dropped: the
container image sets AUTOSCALER_POLICIES, AUTOSCALER_STATE and AUTOSCALER_LISTEN, and a
config file's `policies:` then ran an empty folder without a word."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autoscaler.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


def test_a_config_key_a_variable_overrides_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tmp_path / "autoscaler.yaml"
    config.write_text(f"policies: [{policies}]\n")
    monkeypatch.setenv("AUTOSCALER_POLICIES", str(empty))
    assert main(["validate", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        f"warning: {config}: policies is overridden by AUTOSCALER_POLICIES (a flag wins over "
        "a variable, a variable over the config file)\n"
    )
    assert captured.out.startswith("0 policies valid")
    monkeypatch.delenv("AUTOSCALER_POLICIES")
    assert main(["validate", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and not captured.out.startswith("0 policies")


def test_a_repeatable_flag_that_adds_to_the_files_values_is_no_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "autoscaler.yaml"
    config.write_text("prometheus: {headers: {X-Scope-OrgID: tenant-a}}\n")
    config.write_text(
        "prometheus: {headers: {X-Scope-OrgID: tenant-a}, url: 'http://127.0.0.1:9'}\n"
    )
    policy = tmp_path / "fixed.yaml"  # no query: nothing waits on Prometheus
    policy.write_text(
        "name: fixed\ntarget: {type: nomad, job: j, group: g}\nmin: 0\nmax: 3\n"
        "checks:\n  - {name: floor, strategy: fixed, count: 1}\n"
    )
    argv = ["plan", str(policy), "--config", str(config), "--nomad-timeout", "0.1"]
    main([*argv, "--prometheus-header", "X-Extra: 1"])  # adds to the file's header
    assert "overridden" not in capsys.readouterr().err
    main([*argv, "--prometheus-url", "http://127.0.0.1:9"])  # replaces the file's URL
    assert "prometheus.url is overridden by --prometheus-url" in capsys.readouterr().err


def test_ha_from_the_config_file_without_postgres_is_a_configuration_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It exited 2, a usage error (`--ha needs ...`), for a file's mistake: 4, as the file's
    # other problems, is what the units do not restart on and what the README promises.
    config = tmp_path / "autoscaler.yaml"
    config.write_text("ha: {enabled: true}\n")
    code = main(["run", str(ROOT / "policies"), "--config", str(config), "--state", "s.db"])
    assert code == 4
    assert f"{config}: ha.enabled needs a shared state database" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # the flag's own: a usage error
        main(["run", str(ROOT / "policies"), "--ha", "--state", "s.db"])
    assert exited.value.code == 2
