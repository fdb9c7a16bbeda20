"""The service config file end to end, shell completion and `--help`, as users meet them:
the CLI as a subprocess against real Prometheus, moto and the Nomad API stand-in."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli.test_cli import asg_policy, autoscaler, per_instance
from tests.support.aws import MotoServer
from tests.support.nomad_api import NomadApiStandIn
from tests.support.prometheus import Metrics

pytestmark = pytest.mark.integration

DEAD_URL = "http://127.0.0.1:9"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "policies"
    path.mkdir()
    return path


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "autoscaler.yaml"
    path.write_text(text)
    return str(path)


def test_plan_takes_its_policies_and_prometheus_from_the_config_file(
    folder: Path,
    tmp_path: Path,
    moto_server: MotoServer,
    prometheus: Any,
    metrics: Metrics,
    make_asg: Callable[..., str],
) -> None:
    asg = make_asg(desired=2)
    load = metrics.push("load", 73)
    (folder / "web.yaml").write_text(asg_policy("web", asg, per_instance(f"sum({load})")))
    config = write_config(
        tmp_path,
        f"policies: [{folder}]\nprometheus:\n  url: {prometheus.url}\n  query_timeout: 1\n",
    )
    result = autoscaler("plan", "--config", config, "-o", "json", env=moto_server.env)
    assert result.returncode == 0, result.stderr
    (plan,) = json.loads(result.stdout)
    assert (plan["policy"], plan["desired"]) == ("web", 8)

    # A variable wins over the file, a flag over both.
    via_env = autoscaler(
        "plan",
        "-o",
        "json",
        env={**moto_server.env, "AUTOSCALER_CONFIG": config, "AUTOSCALER_PROMETHEUS_URL": DEAD_URL},
    )
    assert via_env.returncode == 3, via_env.stderr
    assert "unreachable" in json.loads(via_env.stdout)[0]["error"]
    flag = autoscaler(
        "plan",
        "-o",
        "json",
        "--prometheus-url",
        prometheus.url,
        env={**moto_server.env, "AUTOSCALER_CONFIG": config, "AUTOSCALER_PROMETHEUS_URL": DEAD_URL},
    )
    assert flag.returncode == 0, flag.stderr


def test_an_empty_variable_leaves_the_config_files_value_in_place(
    folder: Path,
    tmp_path: Path,
    moto_server: MotoServer,
    prometheus: Any,
    metrics: Metrics,
    make_asg: Callable[..., str],
    desired_capacity: Callable[[str], int],
) -> None:
    # compose's and Kubernetes' `${X:-}` give an empty variable for one not set. Before,
    # `AUTOSCALER_DRY_RUN=` was false over the file's `dry_run: true` (the group scaled
    # live) and `AUTOSCALER_POLICIES=` the current folder over the file's `policies:`.
    asg = make_asg(desired=2)
    load = metrics.push("load", 73)
    (folder / "web.yaml").write_text(asg_policy("web", asg, per_instance(f"sum({load})")))
    config = write_config(
        tmp_path,
        f"policies: [{folder}]\ndry_run: true\nstate: {tmp_path / 's.db'}\n"
        f"prometheus: {{url: '{prometheus.url}'}}\n",
    )
    empty = {"AUTOSCALER_DRY_RUN": "", "AUTOSCALER_POLICIES": "", "AUTOSCALER_STATE": ""}
    result = autoscaler("run", "--once", "--config", config, env={**moto_server.env, **empty})
    assert result.returncode == 0, result.stderr
    assert "policy=web" in result.stderr and "action=up dry_run=true" in result.stderr
    assert "overridden" not in result.stderr
    assert desired_capacity(asg) == 2
    assert (tmp_path / "s.db").exists()


def test_an_invalid_config_file_is_one_line_per_problem_and_exits_4(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, "prometheus:\n  url: http://p:9090\n  tokn_file: /t\nworkers: x\n"
    )
    for command in (["plan"], ["run", "--once", "--state", str(tmp_path / "s")]):
        result = autoscaler(*command, "--config", config)
        assert result.returncode == 4, result.stderr
        assert result.stderr.splitlines() == [
            f"{config}:3: prometheus.tokn_file: unknown key 'tokn_file' (did you mean "
            "'token_file'?); allowed keys: ca_bundle, client_cert, client_key, headers, "
            "password_file, query_timeout, token_file, url, username",
            f"{config}:4: workers: expected an integer, got text 'x'",
        ]
    validate = autoscaler("validate", "policies", "--config", config)
    assert validate.returncode == 1
    assert autoscaler("plan", "--config", config, "--detailed-exitcode").returncode == 1


def test_a_secret_comes_from_its_file_and_never_shows(
    folder: Path,
    tmp_path: Path,
    prometheus: Any,
    metrics: Metrics,
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", {"api": 3})
    nomad_api.enable_acl({"s3cret-token-value": {"default": ["read-job", "scale-job"]}})
    load = metrics.push("load", 73)
    (folder / "chat.yaml").write_text(
        "name: chat\ntarget: {type: nomad, job: chat, group: api}\nmin: 0\nmax: 20\n"
        f"checks:\n{per_instance(f'sum({load})')}"
    )
    token = tmp_path / "nomad-token"
    token.write_text("s3cret-token-value\n")
    config = write_config(
        tmp_path,
        f"policies: [{folder}]\nprometheus: {{url: '{prometheus.url}'}}\n"
        f"nomad: {{addr: '{nomad_api.address}', token_file: '{token}'}}\n",
    )
    result = autoscaler("plan", "--config", config, "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["desired"] == 8
    assert "s3cret" not in result.stdout + result.stderr

    token.write_text("wrong-token-value\n")
    refused = autoscaler("plan", "--config", config, "-o", "json")
    assert refused.returncode == 3
    assert "ACL token not found" in json.loads(refused.stdout)[0]["error"]
    assert "wrong-token" not in refused.stdout + refused.stderr

    token.unlink()
    missing = autoscaler("plan", "--config", config)
    assert missing.returncode == 4
    assert f"cannot read nomad.token_file file {token}" in missing.stderr


@pytest.mark.parametrize(
    ("key", "flag", "what"),
    [
        pytest.param("token_file", "--prometheus-token-file", "Prometheus token", id="token"),
        pytest.param(
            "password_file", "--prometheus-password-file", "Prometheus password", id="password"
        ),
    ],
)
def test_an_unreadable_prometheus_secret_file_is_named_without_a_variable_never_set(
    key: str, flag: str, what: str, tmp_path: Path
) -> None:
    # The file may come from the config file or a flag: the message must not send the user
    # to AUTOSCALER_PROMETHEUS_TOKEN (or _PASSWORD), which holds the secret itself.
    missing = tmp_path / "absent"
    config = write_config(tmp_path, f"prometheus: {{username: u, {key}: '{missing}'}}\n")
    for args in (["--config", config], [flag, str(missing), "--prometheus-username", "u"]):
        result = autoscaler("plan", str(tmp_path / "none.yaml"), *args)
        assert result.returncode == 4, result.stderr
        assert f"error: cannot read {what} file {missing}: " in result.stderr
        assert "AUTOSCALER_PROMETHEUS" not in result.stderr


# --- completion and help ------------------------------------------------------------------


def bash_complete(script: str, words: list[str]) -> list[str]:
    """What bash offers after `words` (the last one being completed), with the script."""
    line = " ".join(words)
    program = (
        f"{script}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMP_LINE='{line}'; "
        f"COMP_POINT={len(line)}\n"
        "_shtab_autoscaler autoscaler\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_bash_completion_offers_commands_flags_and_choices() -> None:
    result = autoscaler("completion", "bash")
    assert result.returncode == 0
    script = result.stdout
    assert "plan" in bash_complete(script, ["autoscaler", "pl"])
    assert set(bash_complete(script, ["autoscaler", "plan", "-o", ""])) == {
        "table",
        "wide",
        "json",
        "yaml",
    }
    assert "--detailed-exitcode" in bash_complete(script, ["autoscaler", "plan", "--det"])
    assert "--config" in bash_complete(script, ["autoscaler", "run", "--con"])
    assert {"bash", "zsh"} == set(bash_complete(script, ["autoscaler", "completion", ""]))


def test_zsh_completion_is_a_compdef_for_every_command() -> None:
    result = autoscaler("completion", "zsh")
    assert result.returncode == 0
    assert result.stdout.startswith("#compdef autoscaler")
    for word in ("validate", "plan", "run", "schema", "completion", "--detailed-exitcode"):
        assert word in result.stdout


# The README promises it for every command: each one is listed here.
@pytest.mark.parametrize(
    "command",
    [
        [],
        ["validate"],
        ["plan"],
        ["run"],
        ["schema"],
        ["completion"],
        ["simulate"],
        ["backtest"],
        ["test"],
        ["convert"],
    ],
)
def test_help_shows_examples_and_exit_codes(command: list[str]) -> None:
    result = autoscaler(*command, "--help")
    assert result.returncode == 0
    examples = result.stdout.split("examples:\n")[1]
    assert examples.startswith("  autoscaler ")
    codes = result.stdout.split("exit codes:\n")[1]
    assert codes.startswith("  0 ")
    if command == ["plan"]:
        assert "--detailed-exitcode" in codes and "2    some policy would scale" in codes
