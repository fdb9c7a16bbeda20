"""Options of the long-lived service (`autoscaler run`), from flags and the environment."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """How the service runs: which policies, where it listens, how it behaves."""

    paths: tuple[str, ...]
    dry_run: bool = False
    listen: str = "127.0.0.1:8080"
    api_token_file: str | None = None
    workers: int = 4
    reload_interval: float = 5.0
    notify_urls: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    insecure_no_auth: bool = False
    discovery_interval: float = 30.0  # seconds between two reads of AWS groups by tags


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def env_flag(name: str, value: str | bool | None) -> bool:
    """A boolean flag whose default came from the environment variable `name` as text.

    Raises ValueError naming the variable when the text is neither true nor false.
    """
    if value is None or isinstance(value, bool):
        return bool(value)
    text = value.strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{name} must be one of 1, true, yes, on, 0, false, no, off; got {value!r}")


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `autoscaler run` beyond the connection settings."""
    env = os.environ.get
    group = parser.add_argument_group("service")
    group.add_argument(
        "--listen",
        default=env("AUTOSCALER_LISTEN", "127.0.0.1:8080"),
        help="HTTP API address, HOST:PORT (env AUTOSCALER_LISTEN; default %(default)s; "
        "empty to disable)",
    )
    group.add_argument(
        "--api-token-file",
        default=env("AUTOSCALER_API_TOKEN_FILE"),
        help="file holding the bearer token required on evaluate, reload and the "
        "Alertmanager webhook (env AUTOSCALER_API_TOKEN_FILE)",
    )
    group.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=env("AUTOSCALER_INSECURE_NO_AUTH"),  # checked by `env_flag` after parsing
        help="serve the HTTP API beyond loopback without --api-token-file; without this "
        "flag such a start is refused, since anyone who can reach the address could "
        "trigger evaluations and reloads (env AUTOSCALER_INSECURE_NO_AUTH=1)",
    )
    group.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        default=[h for h in env("AUTOSCALER_ALLOWED_HOSTS", "").replace(",", " ").split() if h],
        help="a Host name the HTTP API answers to, besides IP addresses, localhost and the "
        "--listen host (repeatable; '*' for any name; env AUTOSCALER_ALLOWED_HOSTS, "
        "space- or comma-separated). Other names get 421: a guard against DNS rebinding",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=env("AUTOSCALER_WORKERS", "4"),  # argparse applies `type` to it
        help="policies evaluated at once at most (env AUTOSCALER_WORKERS; default %(default)s)",
    )
    group.add_argument(
        "--reload-interval",
        type=float,
        default=env("AUTOSCALER_RELOAD_INTERVAL", "5"),
        help="seconds between checks of the policy files for changes (0: only on SIGHUP or "
        "POST /v1/reload; env AUTOSCALER_RELOAD_INTERVAL)",
    )
    group.add_argument(
        "--discovery-interval",
        type=float,
        default=env("AUTOSCALER_DISCOVERY_INTERVAL", "30"),
        help="seconds between two reads of the Auto Scaling Groups that templates discover "
        "by tags (Nomad is watched, not polled; env AUTOSCALER_DISCOVERY_INTERVAL; default "
        "%(default)s)",
    )
    group.add_argument(
        "--history-days",
        type=float,
        default=env("AUTOSCALER_HISTORY_DAYS", "14"),
        help="keep recorded decisions this many days (default %(default)s)",
    )
    group.add_argument(
        "--history-max",
        type=int,
        default=env("AUTOSCALER_HISTORY_MAX", "10000"),
        help="keep at most this many recorded decisions (default %(default)s)",
    )
    group.add_argument(
        "--notify-url",
        action="append",
        default=[u for u in env("AUTOSCALER_NOTIFY_URLS", "").split() if u],
        help="webhook called after each scaling action (repeatable; Slack-compatible). "
        "Such URLs are secrets: prefer env AUTOSCALER_NOTIFY_URLS (space-separated)",
    )


def add_ha_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of replicas sharing one PostgreSQL state database."""
    env = os.environ.get
    group = parser.add_argument_group("high availability (PostgreSQL --state)")
    group.add_argument(
        "--ha",
        action="store_true",
        default=env("AUTOSCALER_HA"),  # checked by `env_flag` after parsing
        help="run as one of several replicas: the holder of the leader lease evaluates, the "
        "others stand by and take over (env AUTOSCALER_HA=1)",
    )
    group.add_argument(
        "--lease-ttl",
        type=float,
        default=env("AUTOSCALER_LEASE_TTL", "15"),
        help="seconds a leader's lease lasts unless renewed (every third of it); a standby "
        "takes over within this plus one interval (env AUTOSCALER_LEASE_TTL; default "
        "%(default)s)",
    )
    group.add_argument(
        "--replica-id",
        default=env("AUTOSCALER_REPLICA_ID") or f"{socket.gethostname()}-{os.getpid()}",
        help="this replica's name in the lease, logs and API (env AUTOSCALER_REPLICA_ID; "
        "default HOSTNAME-PID)",
    )


def service_config_from_args(args: argparse.Namespace) -> ServiceConfig:
    return ServiceConfig(
        paths=tuple(args.paths),
        dry_run=bool(args.dry_run),
        listen=args.listen,
        api_token_file=args.api_token_file,
        workers=max(1, int(args.workers)),
        reload_interval=float(args.reload_interval),
        notify_urls=tuple(args.notify_url),
        allowed_hosts=tuple(args.allowed_host),
        insecure_no_auth=env_flag("AUTOSCALER_INSECURE_NO_AUTH", args.insecure_no_auth),
        discovery_interval=max(0.1, float(args.discovery_interval)),
    )
