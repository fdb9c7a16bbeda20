"""Connection settings shared by `plan` and `run`: Prometheus and Nomad, from flags, env
and the config file (see `options`).

Secrets (tokens, passwords) can come from files or the environment, never only from the
command line where `ps` would show them.
"""

from __future__ import annotations

import argparse
import codecs
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from autoscaler.config.options import (
    BOOL,
    HEADERS,
    NUMBER,
    TEXT,
    Kind,
    Option,
    OptionError,
    add_arguments,
    at_least,
    at_most,
    source_of,
)
from autoscaler.errors import AutoscalerError
from autoscaler.policy.schema import describe
from autoscaler.redact import register

if TYPE_CHECKING:
    from autoscaler.adapters.sources.prometheus import PrometheusSource
    from autoscaler.adapters.sources.prometheus_settings import PrometheusSettings
    from autoscaler.adapters.targets import TargetFactory
    from autoscaler.adapters.targets.nomad_settings import NomadSettings

# The adapters (requests, python-nomad) are imported when settings are built, not with
# this module: `validate`, `test` and `--help` never talk to a server and start faster.

# One request's timeout at most (seconds): beyond, a socket timeout overflows, and the
# retries (3 or 2 of them) would hold an evaluation for a quarter of an hour already.
TIMEOUT_MAX = 300.0

# AWS credentials boto3 reads from the environment (the shared files are its business).
AWS_SECRET_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything needed to build the adapters."""

    prometheus: PrometheusSettings
    nomad: NomadSettings
    nomad_scaling_policies: bool = False  # also run the policies of jobs' `scaling` blocks

    def source(self, *, workers: int = 0) -> PrometheusSource:
        """The Prometheus source; `workers`: evaluations that may query it at once."""
        from autoscaler.adapters.sources.prometheus import PrometheusSource  # noqa: PLC0415

        return PrometheusSource(self.prometheus, workers=workers)

    def targets(self, *, watch: bool = False) -> TargetFactory:
        """The target factory; `watch` (the service) follows Nomad's job events so a steady
        Nomad target is not read at every evaluation (`adapters.targets.nomad_watch`)."""
        from autoscaler.adapters.targets import TargetFactory  # noqa: PLC0415

        return TargetFactory(nomad=self.nomad, watch_nomad=watch)


NOMAD_SCALING_POLICIES = Option(
    dest="nomad_scaling_policies",
    kind=BOOL,
    flags=("--nomad-scaling-policies",),
    env="AUTOSCALER_NOMAD_SCALING_POLICIES",
    key=("nomad", "scaling_policies"),
    default=False,
    help="also run the Nomad Autoscaler policies of jobs' group `scaling` blocks, read "
    "from Nomad (/v1/scaling/policies) and translated; stop the Nomad Autoscaler first",
)
PROMETHEUS_OPTIONS = (
    Option(
        dest="prometheus_url",
        flags=("--prometheus-url",),
        env="AUTOSCALER_PROMETHEUS_URL",
        key=("prometheus", "url"),
        default="http://localhost:9090",
        help="base URL of Prometheus",
    ),
    Option(
        dest="prometheus_token_file",
        flags=("--prometheus-token-file",),
        env="AUTOSCALER_PROMETHEUS_TOKEN_FILE",
        key=("prometheus", "token_file"),
        metavar="FILE",
        help="file holding a bearer token (or the token itself in env AUTOSCALER_PROMETHEUS_TOKEN)",
    ),
    Option(
        dest="prometheus_username",
        flags=("--prometheus-username",),
        env="AUTOSCALER_PROMETHEUS_USERNAME",
        key=("prometheus", "username"),
        help="basic auth user; the password comes from AUTOSCALER_PROMETHEUS_PASSWORD "
        "or --prometheus-password-file",
    ),
    Option(
        dest="prometheus_password_file",
        flags=("--prometheus-password-file",),
        env="AUTOSCALER_PROMETHEUS_PASSWORD_FILE",
        key=("prometheus", "password_file"),
        metavar="FILE",
        help="file holding the basic auth password",
    ),
    Option(
        dest="prometheus_ca_bundle",
        flags=("--prometheus-ca-bundle",),
        env="AUTOSCALER_PROMETHEUS_CA_BUNDLE",
        key=("prometheus", "ca_bundle"),
        metavar="FILE",
        help="CA bundle to verify Prometheus' TLS certificate",
    ),
    Option(
        dest="prometheus_client_cert",
        flags=("--prometheus-client-cert",),
        env="AUTOSCALER_PROMETHEUS_CLIENT_CERT",
        key=("prometheus", "client_cert"),
        metavar="FILE",
        help="client certificate (PEM) for mutual TLS, with its key unless "
        "--prometheus-client-key is given",
    ),
    Option(
        dest="prometheus_client_key",
        flags=("--prometheus-client-key",),
        env="AUTOSCALER_PROMETHEUS_CLIENT_KEY",
        key=("prometheus", "client_key"),
        metavar="FILE",
        help="key (PEM, unencrypted) of --prometheus-client-cert",
    ),
    Option(
        dest="prometheus_header",
        kind=HEADERS,
        flags=("--prometheus-header",),
        env="AUTOSCALER_PROMETHEUS_HEADERS",
        key=("prometheus", "headers"),
        default=[],
        metavar="'NAME: VALUE'",
        help="extra header for every query (repeatable; in the variable one per line, in "
        "the file a mapping)",
    ),
    Option(
        dest="query_timeout",
        kind=at_most(at_least(NUMBER, 0.1, unit=" s"), TIMEOUT_MAX, unit=" s"),
        flags=("--query-timeout",),
        env="AUTOSCALER_QUERY_TIMEOUT",
        key=("prometheus", "query_timeout"),
        default=2.0,
        help="seconds for one query attempt; retries stop after 3x this",
    ),
)


def _go_bool_data(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    raise OptionError(f"expected true or false, got {describe(value)}")


# Nomad's own boolean: the variable's text goes to `NomadSettings.from_env`, which reads it
# as Go's strconv.ParseBool would (and refuses anything else, exit 4); the file's is YAML.
GO_BOOL = Kind(name="boolean", text=str, data=_go_bool_data, schema={"type": "boolean"})


def _nomad(name: str, key: str, help: str, kind: Kind = TEXT) -> Option:
    return Option(
        dest=f"nomad_{key}",
        kind=kind,
        env=name,
        key=("nomad", key),
        help=help,
    )


# Nomad's own variables, as the `nomad` CLI reads them; no flags (NOMAD_TOKEN, a secret,
# is read from the environment or from nomad.token_file, never from the file itself).
NOMAD_OPTIONS = (
    _nomad("NOMAD_ADDR", "addr", "address of a Nomad agent"),
    _nomad("NOMAD_REGION", "region", "region of targets whose policy has none"),
    _nomad("NOMAD_NAMESPACE", "namespace", "read, but a policy's namespace always wins"),
    _nomad("NOMAD_CACERT", "cacert", "CA certificate of the agents (PEM)"),
    _nomad("NOMAD_CLIENT_CERT", "client_cert", "client certificate for mutual TLS"),
    _nomad("NOMAD_CLIENT_KEY", "client_key", "client key for mutual TLS"),
    _nomad("NOMAD_SKIP_VERIFY", "skip_verify", "do not verify the agent's certificate", GO_BOOL),
    Option(
        dest="nomad_token_file",
        key=("nomad", "token_file"),
        help="file holding the ACL token (NOMAD_TOKEN wins over it)",
    ),
)
# Ours, not Nomad's (the `nomad` CLI has no such setting), hence a flag of its own.
NOMAD_TIMEOUT = Option(
    dest="nomad_timeout",
    kind=at_most(at_least(NUMBER, 0.1, unit=" s"), TIMEOUT_MAX, unit=" s"),
    flags=("--nomad-timeout",),
    env="AUTOSCALER_NOMAD_TIMEOUT",
    key=("nomad", "timeout"),
    default=5.0,
    help="seconds for one Nomad API request; retries stop after 2x this",
)
# Not under "Prometheus" in the help: Nomad's settings, --nomad-timeout among them.
NOMAD_CONNECTION_OPTIONS = (NOMAD_SCALING_POLICIES, *NOMAD_OPTIONS, NOMAD_TIMEOUT)
CONNECTION_OPTIONS = (*PROMETHEUS_OPTIONS, *NOMAD_CONNECTION_OPTIONS)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Prometheus flags (each with an AUTOSCALER_PROMETHEUS_* variable and a config key),
    Nomad's settings (variables and config keys only) and `--nomad-timeout`."""
    add_arguments(parser.add_argument_group("Prometheus"), PROMETHEUS_OPTIONS)
    add_arguments(parser, NOMAD_CONNECTION_OPTIONS)


def _read_secret(args: argparse.Namespace, dest: str, env_name: str, what: str) -> str | None:
    """The secret in the file option `dest` names, or in the variable `env_name`, or None.

    Ranked as every option is (flag > variable > config file): the variable wins over a
    file the config file names, and loses to one a flag or a `*_FILE` variable names.
    `what` names the file in an error: it may come from a flag, a variable or the config
    file, so the message names none of them (`env_name` holds the secret, not the path).
    """
    path = getattr(args, dest, None)
    value = os.environ.get(env_name) or None
    if path and not (value and source_of(args, dest) == "file"):
        return read_header_secret(path, what)
    return _header_secret_variable(env_name, value)


def _header_secret_variable(name: str, value: str | None) -> str | None:
    """The secret in the variable `name`, sent in an HTTP header: one holding a control or
    a non-ASCII character is fatal at once, as in a file (`read_header_secret`). A line
    break is left to the settings, whose message says so (`... contains a line break`)."""
    if value is None:
        return None
    register(value, *value.splitlines())
    bad = _first_unprintable(map(ord, value), _TAB_AND_BREAKS)
    if bad is not None:
        raise AutoscalerError(
            f"variable {name}: it holds a control or a non-ASCII character at character "
            f"{bad + 1}; it is sent in an HTTP header, which carries printable ASCII "
            "characters only (letters, digits, punctuation, spaces)"
        )
    return value


def read_secret_file(path: str, what: str) -> str:
    """A secret file's text, stripped, registered with `redact` at once (so no later
    message can show it); its content never appears in the error."""
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise AutoscalerError(f"cannot read {what} file {path}: {reason}") from None
    register(text, *text.splitlines())
    return text


def read_header_secret(path: str, what: str) -> str:
    """A secret file's text (`read_secret_file`) sent in an HTTP header (a token, a Basic
    password): one holding a control or a non-ASCII character, which no header carries
    as meant (`requests` sends latin-1, or fails deep in a request), is fatal at once."""
    text = read_secret_file(path, what)
    problem = unprintable(text.encode())
    if problem is not None:
        raise AutoscalerError(
            f"{what} file {path}: it holds {problem}; it is sent in an HTTP header, which "
            "carries printable ASCII characters only (letters, digits, punctuation, spaces)"
        )
    return text


def unprintable(raw: bytes) -> str | None:
    """What in `raw` an HTTP header cannot carry, or None: a byte-order mark, or a control
    or non-ASCII character at its first byte. Spaces and tabs inside are fine."""
    bad = _first_unprintable(raw, _TAB)
    if bad is None:
        return None
    if raw.startswith(codecs.BOM_UTF8):
        return "a byte-order mark: save the file without one"
    return f"a control or a non-ASCII character at byte {bad + 1}"


_TAB = frozenset(b"\t")
_TAB_AND_BREAKS = frozenset(b"\t\r\n")


def _first_unprintable(codes: Iterable[int], allowed: frozenset[int]) -> int | None:
    """The position of the first byte or character (`codes`, as numbers) that is neither
    printable ASCII nor `allowed`, or None: what an HTTP header cannot carry."""
    return next(
        (i for i, code in enumerate(codes) if not (0x20 <= code <= 0x7E or code in allowed)),
        None,
    )


def nomad_settings_from_args(args: argparse.Namespace) -> NomadSettings:
    """Nomad's settings: NOMAD_* variables first (resolved into `args`), then the file.

    Raises TargetError for a bad one (`NOMAD_SKIP_VERIFY=maybe`), AutoscalerError for an
    unreadable `nomad.token_file`.
    """
    token = _header_secret_variable("NOMAD_TOKEN", os.environ.get("NOMAD_TOKEN") or None)
    if token is None and getattr(args, "nomad_token_file", None):
        token = read_header_secret(args.nomad_token_file, "nomad.token_file")
    values = {
        option.env: getattr(args, option.dest, None)
        for option in NOMAD_OPTIONS
        if option.env is not None
    }
    env = {name: str(value) for name, value in values.items() if value}
    if token:
        env["NOMAD_TOKEN"] = token
    from autoscaler.adapters.targets.nomad_settings import NomadSettings  # noqa: PLC0415

    settings = NomadSettings.from_env(env)
    timeout = getattr(args, "nomad_timeout", None)
    if timeout is None:
        return settings
    return replace(settings, timeout=float(timeout), deadline=2 * float(timeout))


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            # Not shown: a header line is where credentials go (`Authorization: …`).
            raise AutoscalerError(
                f"--prometheus-header number {number} (or line {number} of "
                "AUTOSCALER_PROMETHEUS_HEADERS) is not 'Name: value'; its text is not shown "
                "as it may hold a secret"
            )
        headers[name.strip()] = value.strip()
    return headers


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Build Settings from parsed flags and the environment.

    Every secret read is registered with `autoscaler.redact` before anything can fail: the
    settings classes register their own (tokens, passwords, URL credentials), the AWS
    credentials of the environment are registered here (boto3 reads them by itself).
    """
    register(*(os.environ.get(name) for name in AWS_SECRET_VARIABLES))
    timeout = float(args.query_timeout)
    try:
        prometheus = _prometheus_settings(args, timeout)
    except ValueError as exc:
        if str(exc).startswith("url "):  # say which setting gave it: flag, variable or file
            raise ValueError(f"{_given_as(args, 'prometheus_url')}: {exc}") from None
        raise
    return Settings(
        prometheus=prometheus,
        nomad=nomad_settings_from_args(args),
        nomad_scaling_policies=bool(getattr(args, "nomad_scaling_policies", False)),
    )


def _given_as(args: argparse.Namespace, dest: str) -> str:
    """How the user gave the Prometheus option `dest`: its flag, variable or config key."""
    option = next(o for o in PROMETHEUS_OPTIONS if o.dest == dest)
    source = source_of(args, dest)
    if source == "env" and option.env:
        return option.env
    if source == "file":
        return f"{option.key_name} (config file)"
    if source == "default":
        return "the default Prometheus URL"
    return option.flags[0]


def _prometheus_settings(args: argparse.Namespace, timeout: float) -> PrometheusSettings:
    from autoscaler.adapters.sources.prometheus_settings import (  # noqa: PLC0415
        PrometheusSettings,
    )

    return PrometheusSettings(
        url=args.prometheus_url,
        bearer_token=_read_secret(
            args, "prometheus_token_file", "AUTOSCALER_PROMETHEUS_TOKEN", "Prometheus token"
        ),
        username=args.prometheus_username,
        password=_read_secret(
            args,
            "prometheus_password_file",
            "AUTOSCALER_PROMETHEUS_PASSWORD",
            "Prometheus password",
        ),
        ca_bundle=args.prometheus_ca_bundle,
        client_cert=args.prometheus_client_cert,
        client_key=args.prometheus_client_key,
        headers=_headers(args.prometheus_header),
        timeout=timeout,
        deadline=3 * timeout,
    )
