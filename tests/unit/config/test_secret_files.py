"""A Prometheus or Nomad secret read from a file is sent in an HTTP header: one that holds a
control or a non-ASCII character (or a byte-order mark) is a startup error (exit 4) naming
the file and never the secret, as the API token's is. Before, `pässwort` started `run`
and `plan`, which could never authenticate (or failed deep in `requests`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler import redact
from autoscaler.cli.main import main

POLICY = """\
name: web
target: {type: nomad, job: web, group: app}
min: 1
max: 5
checks:
  - {name: rps, query: 'sum(rate(http_requests_total[1m]))', strategy: per-instance, target: 10}
"""
# Nothing listens there: without the refusal, `plan` and `run --once` fail fast instead.
UNREACHABLE = [
    "--prometheus-url",
    "http://127.0.0.1:9",
    "--nomad-timeout",
    "0.1",
    "--query-timeout",
    "0.1",
]

BAD_SECRETS = [
    pytest.param(
        "pässwort-1234".encode(), "a control or a non-ASCII character at byte 2", id="umlaut"
    ),
    pytest.param(
        b"secret7c4\nsecret3b8", "a control or a non-ASCII character at byte 10", id="two-lines"
    ),
    pytest.param("\ufeffsecret0d6".encode(), "a byte-order mark", id="bom"),
]
# How each secret file is given: by a flag, or by the config file (nomad.token_file).
WAYS = [
    pytest.param("Prometheus token", ["--prometheus-token-file", "{path}"], "", id="prom-token"),
    pytest.param(
        "Prometheus password",
        ["--prometheus-username", "u", "--prometheus-password-file", "{path}"],
        "",
        id="prom-password",
    ),
    pytest.param("nomad.token_file", [], "nomad: {{token_file: '{path}'}}\n", id="nomad-token"),
]


def _arguments(tmp_path: Path, secret: bytes, flags: list[str], config: str) -> list[str]:
    path = tmp_path / "secret"
    path.write_bytes(secret + b"\n")
    (tmp_path / "web.yaml").write_text(POLICY)
    (tmp_path / "config.yaml").write_text(config.format(path=path) or "{}\n")
    given = [flag.format(path=path) for flag in flags]
    return [str(tmp_path / "web.yaml"), "--config", str(tmp_path / "config.yaml"), *given]


@pytest.fixture(autouse=True)
def _no_nomad_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOMAD_TOKEN wins over nomad.token_file; none here, and no Nomad agent. Nor any
    secret an earlier test of this process registered: it would mask words of the
    messages checked here (a `pass` made `Prometheus ***word file`)."""
    monkeypatch.delenv("NOMAD_TOKEN", raising=False)
    monkeypatch.setenv("NOMAD_ADDR", "http://127.0.0.1:9")
    redact.clear()


@pytest.mark.parametrize("command", [["plan"], ["run", "--once", "--listen", ""]])
@pytest.mark.parametrize(("what", "flags", "config"), WAYS)
@pytest.mark.parametrize(("secret", "problem"), BAD_SECRETS)
def test_a_secret_file_a_header_cannot_carry_is_a_startup_error_naming_the_file_not_the_secret(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    what: str,
    flags: list[str],
    config: str,
    secret: bytes,
    problem: str,
) -> None:
    arguments = _arguments(tmp_path, secret, flags, config)
    if command[0] == "run":  # its state beside the test's files, should it start
        arguments += ["--state", str(tmp_path / "state.db")]
    assert main([*command, *arguments, *UNREACHABLE]) == 4
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{what} file {tmp_path / 'secret'}: it holds {problem}" in err
    assert "printable ASCII characters only" in err
    assert "secret7c4" not in err and "secret3b8" not in err and "pässwort" not in err


@pytest.mark.parametrize(("secret", "problem"), BAD_SECRETS)
def test_validate_discover_refuses_such_a_nomad_token_file_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], secret: bytes, problem: str
) -> None:
    config = "nomad: {{token_file: '{path}'}}\n"
    arguments = _arguments(tmp_path, secret, [], config)
    assert main(["validate", "--discover", *arguments]) == 4
    assert f"nomad.token_file file {tmp_path / 'secret'}: it holds {problem}" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(("what", "flags", "config"), WAYS)
def test_spaces_and_tabs_inside_a_secret_file_and_its_trailing_newline_are_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, flags: list[str], config: str
) -> None:
    arguments = _arguments(tmp_path, b"tok en\twith-spaces", flags, config)
    assert main(["plan", *arguments, *UNREACHABLE]) == 3  # read; only nothing to evaluate with
    assert "printable ASCII" not in capsys.readouterr().err


VARIABLES = [
    pytest.param("AUTOSCALER_PROMETHEUS_TOKEN", [], id="prom-token"),
    pytest.param("AUTOSCALER_PROMETHEUS_PASSWORD", ["--prometheus-username", "u"], id="prom-pw"),
    pytest.param("NOMAD_TOKEN", [], id="nomad-token"),
]


@pytest.mark.parametrize(("variable", "flags"), VARIABLES)
@pytest.mark.parametrize(
    ("secret", "where"),
    [("pässwort-1234", 2), ("secret7c4\x1bsecret3b8", 10), ("\ufeffsecret0d6", 1)],
)
def test_a_secret_variable_a_header_cannot_carry_is_a_startup_error_naming_the_variable(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    flags: list[str],
    secret: str,
    where: int,
) -> None:
    monkeypatch.setenv(variable, secret)
    arguments = _arguments(tmp_path, b"unused", [], "")
    assert main(["plan", *arguments, *flags, *UNREACHABLE]) == 4
    out, err = capsys.readouterr()
    assert out == ""
    expected = f"variable {variable}: it holds a control or a non-ASCII character at character "
    assert f"{expected}{where};" in err
    assert "printable ASCII characters only" in err
    assert "secret7c4" not in err and "secret3b8" not in err and "pässwort" not in err


@pytest.mark.parametrize(("variable", "flags"), VARIABLES)
def test_spaces_and_tabs_inside_a_secret_variable_are_fine(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    flags: list[str],
) -> None:
    monkeypatch.setenv(variable, "tok en\twith-spaces")
    arguments = _arguments(tmp_path, b"unused", [], "")
    assert main(["plan", *arguments, *flags, *UNREACHABLE]) == 3
    assert "printable ASCII" not in capsys.readouterr().err
