"""Connection settings shared by `plan` and `run`: Prometheus and Nomad, from flags and env.

Secrets (tokens, passwords) can come from files or the environment, never only from the
command line where `ps` would show them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from autoscaler.adapters.sources.prometheus import PrometheusSettings, PrometheusSource
from autoscaler.adapters.targets import TargetFactory
from autoscaler.adapters.targets.nomad import NomadSettings
from autoscaler.errors import AutoscalerError
from autoscaler.redact import register

# AWS credentials boto3 reads from the environment (the shared files are its business).
AWS_SECRET_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything needed to build the adapters."""

    prometheus: PrometheusSettings
    nomad: NomadSettings
    nomad_scaling_policies: bool = False  # also run the policies of jobs' `scaling` blocks

    def source(self) -> PrometheusSource:
        return PrometheusSource(self.prometheus)

    def targets(self) -> TargetFactory:
        return TargetFactory(nomad=self.nomad)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Prometheus flags; each has an AUTOSCALER_PROMETHEUS_* environment variable."""
    env = os.environ.get
    group = parser.add_argument_group("Prometheus")
    group.add_argument(
        "--prometheus-url",
        default=env("AUTOSCALER_PROMETHEUS_URL", "http://localhost:9090"),
        help="base URL of Prometheus (env AUTOSCALER_PROMETHEUS_URL; default %(default)s)",
    )
    group.add_argument(
        "--prometheus-token-file",
        default=env("AUTOSCALER_PROMETHEUS_TOKEN_FILE"),
        help="file holding a bearer token (or env AUTOSCALER_PROMETHEUS_TOKEN)",
    )
    group.add_argument(
        "--prometheus-username",
        default=env("AUTOSCALER_PROMETHEUS_USERNAME"),
        help="basic auth user; the password comes from AUTOSCALER_PROMETHEUS_PASSWORD "
        "or --prometheus-password-file",
    )
    group.add_argument(
        "--prometheus-password-file", default=env("AUTOSCALER_PROMETHEUS_PASSWORD_FILE")
    )
    group.add_argument(
        "--prometheus-ca-bundle",
        default=env("AUTOSCALER_PROMETHEUS_CA_BUNDLE"),
        help="CA bundle to verify Prometheus' TLS certificate",
    )
    group.add_argument(
        "--prometheus-header",
        action="append",
        default=[h for h in env("AUTOSCALER_PROMETHEUS_HEADERS", "").split("\n") if h],
        metavar="'NAME: VALUE'",
        help="extra header for every query (repeatable; env AUTOSCALER_PROMETHEUS_HEADERS, "
        "one per line)",
    )
    group.add_argument(
        "--nomad-scaling-policies",
        action="store_true",
        default=os.environ.get("AUTOSCALER_NOMAD_SCALING_POLICIES", "") in ("1", "true", "yes"),
        help="also run the Nomad Autoscaler policies of jobs' group `scaling` blocks, read "
        "from Nomad (/v1/scaling/policies) and translated (env "
        "AUTOSCALER_NOMAD_SCALING_POLICIES=1); stop the Nomad Autoscaler first",
    )
    group.add_argument(
        "--query-timeout",
        type=float,
        default=env("AUTOSCALER_QUERY_TIMEOUT", "2"),  # argparse applies `type` to it
        help="seconds for one query attempt; retries stop after 3x this (default %(default)s)",
    )


def _read_secret(path: str | None, env_name: str) -> str | None:
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise AutoscalerError(f"cannot read {env_name} file {path}: {exc}") from exc
    return os.environ.get(env_name) or None


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
    timeout = max(0.1, float(args.query_timeout))
    prometheus = PrometheusSettings(
        url=args.prometheus_url,
        bearer_token=_read_secret(args.prometheus_token_file, "AUTOSCALER_PROMETHEUS_TOKEN"),
        username=args.prometheus_username,
        password=_read_secret(args.prometheus_password_file, "AUTOSCALER_PROMETHEUS_PASSWORD"),
        ca_bundle=args.prometheus_ca_bundle,
        headers=_headers(args.prometheus_header),
        timeout=timeout,
        deadline=3 * timeout,
    )
    return Settings(
        prometheus=prometheus,
        nomad=NomadSettings.from_env(),
        nomad_scaling_policies=bool(getattr(args, "nomad_scaling_policies", False)),
    )
