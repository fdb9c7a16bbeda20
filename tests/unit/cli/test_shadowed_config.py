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
