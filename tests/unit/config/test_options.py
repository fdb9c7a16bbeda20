"""Option resolution: flag, then variable, then config file, then default; a bad variable
is reported by its own name; the config file checked at FILE:LINE: FIELD like policies."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from autoscaler.cli import main as main_module
from autoscaler.cli.main import FILE_OPTIONS, build_parser
from autoscaler.config.connections import nomad_settings_from_args, settings_from_args
from autoscaler.config.file import config_schema, parse_config
from autoscaler.config.options import OptionError, parsed_options, resolve
from autoscaler.config.service import service_config_from_args
from autoscaler.errors import AutoscalerError

ROOT = Path(__file__).resolve().parents[3]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


# What a configuration file gives: the value at each key path, e.g. ("api", "allowed_hosts").
FileValues = dict[tuple[str, ...], Any]


def resolved(
    argv: list[str], environ: dict[str, str], file: FileValues | None = None
) -> argparse.Namespace:
    args = parse(*argv)
    resolve(args, parsed_options(args), file or {}, environ)
    return args


@pytest.mark.parametrize(
    ("argv", "environ", "file", "workers"),
    [
        pytest.param(["--workers", "7"], {"AUTOSCALER_WORKERS": "6"}, 5, 7, id="flag-wins"),
        pytest.param([], {"AUTOSCALER_WORKERS": "6"}, 5, 6, id="env-over-file"),
        pytest.param([], {}, 5, 5, id="file-over-default"),
        pytest.param([], {}, None, 4, id="default"),
    ],
)
def test_precedence_is_flag_env_file_default(
    argv: list[str], environ: dict[str, str], file: int | None, workers: int
) -> None:
    values: FileValues = {} if file is None else {("workers",): file}
    args = resolved(["run", *argv], environ, values)
    assert args.workers == workers


def test_a_repeatable_flag_adds_to_the_list_of_the_variable_or_the_file() -> None:
    environ = {"AUTOSCALER_ALLOWED_HOSTS": "a.example, b.example"}
    assert resolved(["run"], environ).allowed_host == ["a.example", "b.example"]
    flag = ["run", "--allowed-host", "c"]
    assert resolved(flag, environ).allowed_host == ["a.example", "b.example", "c"]
    file: FileValues = {("api", "allowed_hosts"): ["f.example"]}
    assert resolved(flag, {}, file).allowed_host == ["f.example", "c"]
    assert resolved(flag, environ, file).allowed_host == ["a.example", "b.example", "c"]
    assert resolved(flag, {}).allowed_host == ["c"]


def test_an_empty_listen_variable_disables_the_api_as_the_flag_does() -> None:
    assert resolved(["run"], {"AUTOSCALER_LISTEN": ""}).listen == ""
    assert resolved(["run", "--listen", ""], {}).listen == ""
    assert resolved(["run"], {}).listen == "127.0.0.1:8080"


@pytest.mark.parametrize(
    ("secret", "extra"),
    [
        pytest.param("token", {}, id="token"),
        pytest.param("password", {("prometheus", "username"): "u"}, id="password"),
    ],
)
def test_a_secret_variable_beats_the_config_files_secret_file_and_loses_to_a_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str, extra: dict[Any, str]
) -> None:
    # Before, a `prometheus.token_file` in the config file won over the variable.
    path = tmp_path / "secret"
    path.write_text("from-the-file\n")
    monkeypatch.setenv(f"AUTOSCALER_PROMETHEUS_{secret.upper()}", "from-the-variable")
    file = {("prometheus", f"{secret}_file"): str(path), **extra}
    attribute = "bearer_token" if secret == "token" else secret
    flag = f"--prometheus-{secret}-file={path}"
    file_variable = {f"AUTOSCALER_PROMETHEUS_{secret.upper()}_FILE": str(path)}
    for argv, environ, expected in [
        (["plan"], {}, "from-the-variable"),
        (["plan", flag], {}, "from-the-file"),
        (["plan"], file_variable, "from-the-file"),  # both variables: the file's, as before
    ]:
        settings = settings_from_args(resolved(argv, environ, file))
        assert getattr(settings.prometheus, attribute) == expected, (argv, environ)


def test_a_client_certificate_for_prometheus_comes_from_a_flag_a_variable_or_the_file() -> None:
    cases: list[tuple[list[str], dict[str, str], FileValues]] = [
        (["plan", "--prometheus-client-cert=/c.pem", "--prometheus-client-key=/k.pem"], {}, {}),
        (
            ["plan"],
            {
                "AUTOSCALER_PROMETHEUS_CLIENT_CERT": "/c.pem",
                "AUTOSCALER_PROMETHEUS_CLIENT_KEY": "/k.pem",
            },
            {},
        ),
        (
            ["plan"],
            {},
            {("prometheus", "client_cert"): "/c.pem", ("prometheus", "client_key"): "/k.pem"},
        ),
    ]
    for argv, environ, file in cases:
        settings = settings_from_args(resolved(argv, environ, file)).prometheus
        assert (settings.client_cert, settings.client_key) == ("/c.pem", "/k.pem"), argv
    assert settings_from_args(resolved(["plan"], {})).prometheus.client_cert is None


def test_notification_urls_follow_the_precedence_of_their_two_forms(tmp_path: Path) -> None:
    # Before, AUTOSCALER_NOTIFY_URLS won over the flag `--notify-urls-file`.
    listed = tmp_path / "urls"
    listed.write_text("https://hooks.example/from-the-file\n")
    variable = {"AUTOSCALER_NOTIFY_URLS": "https://hooks.example/from-the-variable"}
    file_flag = f"--notify-urls-file={listed}"
    cases: list[tuple[list[str], dict[str, str], FileValues, str]] = [
        (["run", file_flag], variable, {}, "from-the-file"),
        (["run"], variable, {("notify", "urls_file"): str(listed)}, "from-the-variable"),
        (["run", "--notify-url=https://hooks.example/flag", file_flag], {}, {}, "flag"),
        (
            ["run"],
            {**variable, "AUTOSCALER_NOTIFY_URLS_FILE": str(listed)},
            {},
            "from-the-variable",
        ),
    ]
    for argv, environ, file, expected in cases:
        config = service_config_from_args(resolved(argv, environ, file))
        assert config.notify_urls == (f"https://hooks.example/{expected}",), (argv, environ, file)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        pytest.param("127.0.0.1:65536", "the port must be from 0 to 65535", id="port-too-big"),
        pytest.param("127.0.0.1:8080x", "write it as HOST:PORT", id="not-a-port"),
        pytest.param("127.0.0.1:\u00b2", "write it as HOST:PORT", id="not-ascii"),
    ],
)
def test_a_bad_listen_address_is_refused_by_flag_variable_and_file_naming_it(
    listen: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, 127.0.0.1:65536 went through to the socket: OverflowError, a traceback.
    with pytest.raises(SystemExit) as exited:
        parse("run", "--listen", listen)
    assert exited.value.code == 2
    assert f"argument --listen: {message}" in capsys.readouterr().err
    args = parse("run")
    with pytest.raises(OptionError, match=f"^AUTOSCALER_LISTEN: {message}"):
        resolve(args, parsed_options(args), {}, {"AUTOSCALER_LISTEN": listen})
    config = parse_config(f"api:\n  listen: '{listen}'\n", "autoscaler.yaml", FILE_OPTIONS)
    (problem,) = config.problems
    assert (problem.line, problem.field) == (2, "api.listen")
    assert message in problem.message
    assert resolved(["run", "--listen", "[::1]:65535"], {}).listen == "[::1]:65535"


def test_plan_and_run_keep_their_own_state_defaults() -> None:
    assert resolved(["plan"], {}).state is None
    assert resolved(["run"], {}).state == "autoscaler-state.db"
    assert resolved(["plan"], {}, {("state",): "s.db"}).state == "s.db"


def test_nomad_variables_win_over_the_file_and_empty_ones_do_not_count() -> None:
    file: FileValues = {("nomad", "addr"): "http://file:4646", ("nomad", "region"): "eu"}
    args = resolved(["plan"], {"NOMAD_ADDR": "http://env:4646", "NOMAD_REGION": ""}, file)
    assert (args.nomad_addr, args.nomad_region) == ("http://env:4646", "eu")


def test_the_nomad_timeout_bounds_each_request_and_twice_it_the_retries() -> None:
    default = nomad_settings_from_args(resolved(["plan"], {}))
    assert (default.timeout, default.deadline) == (5.0, 10.0)  # as before the option
    for args in (
        resolved(["run", "--nomad-timeout", "0.5"], {}),
        resolved(["validate"], {"AUTOSCALER_NOMAD_TIMEOUT": "0.5"}),
        resolved(["plan"], {}, {("nomad", "timeout"): 0.5}),
    ):
        settings = nomad_settings_from_args(args)
        assert (settings.timeout, settings.deadline) == (0.5, 1.0)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        pytest.param("AUTOSCALER_WORKERS", "abc", "expected an integer, got text 'abc'", id="int"),
        pytest.param("AUTOSCALER_HISTORY_DAYS", "inf", "expected a finite number", id="inf"),
        pytest.param("AUTOSCALER_INSECURE_NO_AUTH", "maybe", "expected one of 1, true", id="bool"),
        pytest.param("AUTOSCALER_LOG_FORMAT", "xml", "expected one of text, json", id="choice"),
    ],
)
def test_a_bad_variable_is_reported_by_its_name(variable: str, value: str, message: str) -> None:
    args = parse("run")
    with pytest.raises(OptionError) as caught:
        resolve(args, parsed_options(args), {}, {variable: value})
    assert str(caught.value).startswith(f"{variable}: ")
    assert message in str(caught.value)
    assert "--" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "flag", "value", "message"),
    [
        ("AUTOSCALER_WORKERS", "--workers", "0", "must be at least 1, got 0"),
        ("AUTOSCALER_HISTORY_DAYS", "--history-days", "0", "must be more than 0"),
        ("AUTOSCALER_HISTORY_MAX", "--history-max", "-5", "must be at least 1"),
        ("AUTOSCALER_RELOAD_INTERVAL", "--reload-interval", "-1", "must be at least 0 s"),
        ("AUTOSCALER_LEASE_TTL", "--lease-ttl", "0.5", "must be at least 1 s"),
        ("AUTOSCALER_QUERY_TIMEOUT", "--query-timeout", "0", "must be at least 0.1 s"),
        ("AUTOSCALER_DISCOVERY_INTERVAL", "--discovery-interval", "0", "must be at least 0.1 s"),
        ("AUTOSCALER_API_MAX_CONNECTIONS", "--api-max-connections", "0", "must be at least 1"),
    ],
)
def test_a_value_below_its_bound_is_refused_by_flag_variable_and_file_never_clamped(
    variable: str, flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("run")
    with pytest.raises(OptionError) as caught:
        resolve(args, parsed_options(args), {}, {variable: value})
    assert str(caught.value).startswith(f"{variable}: {message}")
    with pytest.raises(SystemExit) as exited:
        parse("run", flag, value)
    assert exited.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err
    option = next(o for o in FILE_OPTIONS if o.env == variable)
    key = option.key
    text = "".join(f"{'  ' * i}{k}:\n" for i, k in enumerate(key[:-1]))
    text += f"{'  ' * (len(key) - 1)}{key[-1]}: {value}\n"
    config = parse_config(text, "autoscaler.yaml", FILE_OPTIONS)
    (problem,) = config.problems
    assert (problem.line, problem.field) == (len(key), ".".join(key))
    assert message in problem.message


@pytest.mark.parametrize(
    ("variable", "flag", "value", "message"),
    [
        pytest.param(
            "AUTOSCALER_HISTORY_DAYS",
            "--history-days",
            "1e10",
            "must be at most 36500, got",
            id="history-days",
        ),
        pytest.param(
            "AUTOSCALER_HISTORY_MAX",
            "--history-max",
            "99999999999999999999",
            "must be at most 1000000000, got",
            id="history-max",
        ),
    ],
)
def test_a_value_the_state_database_cannot_take_is_a_usage_error_not_a_traceback(
    variable: str, flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: OverflowError in timedelta or SQLite, ValueError from an empty path.
    args = parse("run")
    with pytest.raises(OptionError, match=f"^{variable}: {message}"):
        resolve(args, parsed_options(args), {}, {variable: value})
    with pytest.raises(SystemExit) as exited:
        parse("run", flag, value)
    assert exited.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err


def test_an_empty_state_is_a_usage_error_from_the_flag_or_the_file_not_the_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = "the state database cannot be empty"
    with pytest.raises(SystemExit) as exited:
        parse("run", "--state", "")
    assert exited.value.code == 2
    assert f"argument --state: {message}" in capsys.readouterr().err
    (problem,) = parse_config("state: ''\n", "autoscaler.yaml", FILE_OPTIONS).problems
    assert (problem.line, problem.field) == (1, "state") and message in problem.message
    # An empty variable is unset, as every other one (compose's `${X:-}`): the default.
    assert resolved(["run"], {"AUTOSCALER_STATE": ""}).state == "autoscaler-state.db"
    assert resolved(["plan"], {"AUTOSCALER_STATE": ""}).state is None  # plan: no state


@pytest.mark.parametrize(
    ("variable", "flag"),
    [
        ("AUTOSCALER_RELOAD_INTERVAL", "--reload-interval"),
        ("AUTOSCALER_DISCOVERY_INTERVAL", "--discovery-interval"),
    ],
)
def test_an_interval_above_a_day_is_refused_by_flag_variable_and_file(
    variable: str, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, 1e10 was taken and the thread waiting that long died of OverflowError.
    message = "must be at most 86400 s, got 10000000000.0"
    args = parse("run")
    with pytest.raises(OptionError, match=f"^{variable}: {message}"):
        resolve(args, parsed_options(args), {}, {variable: "1e10"})
    with pytest.raises(SystemExit) as exited:
        parse("run", flag, "1e10")
    assert exited.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err
    key = flag.removeprefix("--").replace("-", "_")
    config = parse_config(f"{key}: 1.0e+10\n", "autoscaler.yaml", FILE_OPTIONS)
    (problem,) = config.problems
    assert (problem.line, problem.field) == (1, key)
    assert message in problem.message
    assert getattr(resolved(["run", flag, "86400"], {}), key) == 86400.0


def test_a_value_on_its_bound_is_accepted() -> None:
    environ = {"AUTOSCALER_WORKERS": "1", "AUTOSCALER_RELOAD_INTERVAL": "0"}
    args = resolved(["run", "--lease-ttl", "1", "--history-days", "0.5"], environ)
    assert (args.workers, args.reload_interval, args.lease_ttl, args.history_days) == (
        1,
        0.0,
        1.0,
        0.5,
    )


# --- the config file ----------------------------------------------------------------------

GOOD = """\
policies: [/etc/autoscaler/policies]
state: /var/lib/autoscaler/state.db
log: {level: warning, format: json}
prometheus:
  url: http://prometheus:9090
  token_file: /run/secrets/prometheus-token
  headers: {X-Scope-OrgID: tenant-1}
  query_timeout: 3
nomad:
  addr: https://nomad:4646
  token_file: /run/secrets/nomad-token
  skip_verify: false
api:
  listen: 0.0.0.0:8080
  token_file: /run/secrets/api-token
  allowed_hosts: [autoscaler.internal]
workers: 8
reload_interval: 2.5
history: {days: 7, max: 500}
notify: {urls_file: /run/secrets/webhooks}
dry_run: true
"""


def test_a_complete_config_file_sets_every_option_it_names() -> None:
    config = parse_config(GOOD, "autoscaler.yaml", FILE_OPTIONS)
    assert config.problems == []
    args = parse("run")
    sources = resolve(args, parsed_options(args), config.values, {})
    assert args.paths == ["/etc/autoscaler/policies"]
    assert args.prometheus_header == ["X-Scope-OrgID: tenant-1"]
    assert (args.workers, args.reload_interval, args.history_max) == (8, 2.5, 500)
    assert (args.nomad_skip_verify, args.nomad_token_file) == ("false", "/run/secrets/nomad-token")
    assert (args.log_level, args.dry_run, args.listen) == ("warning", True, "0.0.0.0:8080")
    assert sources["workers"] == sources["log_level"] == "file"


@pytest.mark.parametrize("command", ["run", "plan", "validate"])
def test_an_empty_variable_is_unset_for_every_option_but_listen(command: str) -> None:
    # compose's and Kubernetes' `${X:-}` give an empty variable for one not set. Before, it
    # was a value: `AUTOSCALER_DRY_RUN=` read as false over the file's `dry_run: true` (live
    # scaling), `AUTOSCALER_POLICIES=` the current folder over the file's `policies:`.
    file = parse_config(GOOD, "autoscaler.yaml", FILE_OPTIONS).values
    options = parsed_options(parse(command))
    empty = {o.env: "" for o in options if o.env and o.env != "AUTOSCALER_LISTEN"}
    assert "AUTOSCALER_POLICIES" in empty and "NOMAD_ADDR" in empty
    assert vars(resolved([command], empty, file)) == vars(resolved([command], {}, file))
    assert vars(resolved([command], empty)) == vars(resolved([command], {}))
    if command == "run":
        assert resolved([command], empty, file).dry_run is True
        assert resolved([command], empty, file).paths == ["/etc/autoscaler/policies"]


def test_an_empty_policies_variable_is_unset_for_backtest_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: [""], the current folder.
    monkeypatch.setenv("AUTOSCALER_POLICIES", "")
    assert parse("backtest", "--from", "-1d").paths == ["policies"]


def test_backtest_takes_its_prometheus_settings_from_the_config_file_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its help names `config prometheus.url` and the others; before, only the variable
    AUTOSCALER_CONFIG gave a file (`--config` was an unrecognized argument, exit 2)."""
    monkeypatch.delenv("AUTOSCALER_CONFIG", raising=False)
    config = tmp_path / "autoscaler.yaml"
    config.write_text("prometheus: {url: 'http://prometheus.internal:9090', query_timeout: 7}\n")
    args = parse("backtest", "--from", "-1d", "--config", str(config))
    assert main_module._resolve_options(build_parser(), args, parsed_options(args)) is None
    assert (args.prometheus_url, args.query_timeout) == ("http://prometheus.internal:9090", 7)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        pytest.param(
            "prometheus:\n  url: x\n  query_timout: 3\n",
            3,
            "prometheus.query_timout",
            "unknown key 'query_timout' (did you mean 'query_timeout'?); allowed keys: ",
            id="typo-in-a-section",
        ),
        pytest.param(
            "workers: 4\nworker: 5\n", 2, "worker", "(did you mean 'workers'?)", id="typo-top"
        ),
        pytest.param(
            "workers: '4'\n", 1, "workers", "expected an integer, got text '4'", id="type"
        ),
        pytest.param(
            "prometheus:\n  token: s3cr3t-value\n",
            2,
            "prometheus.token",
            "secrets are not written in the config file",
            id="inline-secret",
        ),
        pytest.param("api: 8080\n", 1, "api", "expected a mapping of settings", id="not-a-section"),
        pytest.param("log:\n  level: loud\n", 2, "log.level", "expected one of debug", id="choice"),
        pytest.param("a: [1\n", 2, "(yaml)", "invalid YAML", id="yaml"),
        pytest.param("workers: 1\nworkers: 2\n", 2, "workers", "duplicate key", id="duplicate"),
        pytest.param("- workers\n", 1, "(file)", "a mapping of settings", id="not-a-mapping"),
        pytest.param(
            "prometheus: {headers: [a]}\n",
            1,
            "prometheus.headers",
            "expected a mapping of header names",
            id="headers",
        ),
    ],
)
def test_a_bad_config_file_is_reported_at_file_line_field(
    text: str, line: int, field: str, message: str
) -> None:
    config = parse_config(text, "autoscaler.yaml", FILE_OPTIONS)
    assert config.values == {}
    problem = config.problems[0]
    assert (problem.file, problem.line, problem.field) == ("autoscaler.yaml", line, field)
    assert message in problem.message
    assert "s3cr3t" not in str(problem)


def test_an_empty_config_file_sets_nothing() -> None:
    config = parse_config("", "autoscaler.yaml", FILE_OPTIONS)
    assert (config.values, config.problems) == ({}, [])


def test_the_shipped_config_schema_is_generated_and_accepts_the_example() -> None:
    schema = config_schema(FILE_OPTIONS)
    assert json.loads((ROOT / "config.schema.json").read_text()) == schema, (
        "regenerate it: autoscaler schema --config > config.schema.json"
    )
    import yaml

    jsonschema.validate(yaml.safe_load(GOOD), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"prometheus": {"token": "x"}}, schema)


def test_high_availability_and_the_state_password_come_from_the_file_too() -> None:
    text = "state: postgresql://autoscaler@db:5432/autoscaler\nstate_password_file: /run/pw\n"
    text += "ha: {enabled: true, lease_ttl: 30, replica_id: a}\n"
    config = parse_config(text, "autoscaler.yaml", FILE_OPTIONS)
    assert config.problems == []
    args = parse("run", "--replica-id", "b")
    resolve(args, parsed_options(args), config.values, {"AUTOSCALER_LEASE_TTL": "20"})
    assert (args.ha, args.lease_ttl, args.replica_id) == (True, 20.0, "b")
    assert args.state_password_file == "/run/pw"
    assert args.state.startswith("postgresql://")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("https://[hooks.example/T0/secret", "cannot be parsed", id="unparseable"),
        pytest.param("https://" + "a" * 70 + ".example/x", "cannot be parsed", id="long-label"),
        pytest.param("ftp://hooks.example/x", "must be http:// or https://", id="scheme"),
        pytest.param("hooks.example/secret", "must be http:// or https://", id="relative"),
        pytest.param("https:///secret", "must be http:// or https://", id="no-host"),
    ],
)
def test_a_bad_notification_url_is_a_startup_error_naming_where_it_is(
    tmp_path: Path, url: str, problem: str
) -> None:
    # Before, urlsplit's ValueError escaped as a traceback (exit 1), or urllib3 refused
    # the URL only when sending, killing the notifier's thread.
    args = resolved(["run", str(tmp_path), f"--notify-url={url}"], {})
    with pytest.raises(AutoscalerError, match=problem) as raised:
        service_config_from_args(args)
    assert str(raised.value).startswith("--notify-url: ")
    assert "secret" not in str(raised.value)
    listed = tmp_path / "urls"
    listed.write_text(f"https://hooks.example/ok\n\n{url}\n")
    args = resolved(["run", str(tmp_path), f"--notify-urls-file={listed}"], {})
    with pytest.raises(AutoscalerError, match=problem) as raised:
        service_config_from_args(args)
    assert str(raised.value).startswith(f"{listed}:3: ")


def test_good_notification_urls_are_taken() -> None:
    url = "https://hooks.example:8443/services/T0/B0"
    config = service_config_from_args(resolved(["run", "policies", f"--notify-url={url}"], {}))
    assert config.notify_urls == (url,)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--query-timeout", "1e10", "must be at most 300 s, got 10000000000.0"),
        ("--nomad-timeout", "1e10", "must be at most 300 s, got 10000000000.0"),
        ("--lease-ttl", "1e10", "must be at most 3600 s, got 10000000000.0"),
        ("--workers", "100000", "must be at most 1024, got 100000"),
    ],
)
def test_a_timeout_ttl_or_worker_count_beyond_use_is_a_usage_error(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A socket timeout of 1e10 s raised OverflowError in the first request, long after
    # the start; 100,000 workers are 100,000 threads.
    with pytest.raises(SystemExit) as exited:
        parse("run", flag, value)
    assert exited.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["plan", "run", "backtest"])
def test_the_help_lists_only_prometheus_flags_under_prometheus(command: str) -> None:
    """`--nomad-scaling-policies` was listed under "Prometheus:" (beside --query-timeout)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    groups = {g.title: g for g in commands.choices[command]._action_groups}
    flags = [f for a in groups["Prometheus"]._group_actions for f in a.option_strings]
    assert flags, command
    assert all(f.startswith("--prometheus-") or f == "--query-timeout" for f in flags), flags
