"""Options of the long-lived service (`autoscaler run`): flags, variables, config file."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3.util import parse_url

from autoscaler.config.connections import read_secret_file
from autoscaler.config.listen import listen_problem
from autoscaler.config.options import (
    BOOL,
    INT,
    NUMBER,
    SPACED,
    TEXT,
    WORDS,
    Kind,
    Option,
    OptionError,
    add_arguments,
    at_least,
    at_most,
    choice,
    source_of,
)
from autoscaler.errors import AutoscalerError
from autoscaler.redact import register_url

# The default `--api-max-connections`: far more than Prometheus, Alertmanager, health
# checks and operators open (previews run 16 at once), and with the listen backlog (128)
# and the service's own sockets well within the 1024 descriptors systemd gives a unit.
API_MAX_CONNECTIONS = 256
API_MAX_CONNECTIONS_MAX = 1_000_000  # beyond any descriptor limit


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """How the service runs: which policies, where it listens, how it behaves."""

    paths: tuple[str, ...]
    dry_run: bool = False
    listen: str = "127.0.0.1:8080"
    api_token_file: str | None = None
    api_max_connections: int = API_MAX_CONNECTIONS
    workers: int = 4
    reload_interval: float = 5.0
    notify_urls: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    insecure_no_auth: bool = False
    discovery_interval: float = 30.0  # seconds between two reads of AWS groups by tags
    log_decisions: str = "all"  # or "changes": no log line for a plain `none` decision
    metrics_histograms: str = "per-policy"  # or "total": duration histograms in aggregate
    scale_up_unrecorded: bool = False  # scale up even while the state takes no writes


def _listen_text(text: str) -> str:
    problem = listen_problem(text) if text else None  # empty: no HTTP API
    if problem is not None:
        raise OptionError(f"{problem}; got {text!r}")
    return text


LISTEN = Kind(  # checked as read, so a bad port is a usage error, not a crash at bind
    name="address",
    text=_listen_text,
    data=lambda value: _listen_text(TEXT.data(value)),
    schema={"type": "string"},
    typed_flag=True,
)


# Upper bounds: a pause longer than a day helps no one, and beyond these the values
# overflow a thread's wait (reload, discovery), a timedelta or SQLite's integers (history).
DAY = 86_400
HISTORY_DAYS_MAX = 36_500  # a century
WORKERS_MAX = 1024  # threads (and Prometheus connections): far beyond what helps
LEASE_TTL_MAX = 3600.0  # a leader that stops renewing is replaced within it
HISTORY_MAX_MAX = 1_000_000_000

SERVICE_OPTIONS = (
    Option(
        dest="dry_run",
        kind=BOOL,
        flags=("--dry-run",),
        env="AUTOSCALER_DRY_RUN",
        key=("dry_run",),
        default=False,
        help="decide and report, never scale",
    ),
    Option(
        dest="listen",
        kind=LISTEN,
        flags=("--listen",),
        env="AUTOSCALER_LISTEN",
        key=("api", "listen"),
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        empty_unset=False,  # `AUTOSCALER_LISTEN=` turns the API off (the image sets it)
        help="HTTP API address (empty to disable)",
    ),
    Option(
        dest="api_token_file",
        flags=("--api-token-file",),
        env="AUTOSCALER_API_TOKEN_FILE",
        key=("api", "token_file"),
        metavar="FILE",
        help="file holding the bearer token required on evaluate, reload and the "
        "Alertmanager webhook",
    ),
    Option(
        dest="insecure_no_auth",
        kind=BOOL,
        flags=("--insecure-no-auth",),
        env="AUTOSCALER_INSECURE_NO_AUTH",
        key=("api", "insecure_no_auth"),
        default=False,
        help="serve the HTTP API beyond loopback without --api-token-file; without this "
        "flag such a start is refused, since anyone who can reach the address could "
        "trigger evaluations and reloads",
    ),
    Option(
        dest="allowed_host",
        kind=WORDS,
        flags=("--allowed-host",),
        env="AUTOSCALER_ALLOWED_HOSTS",
        key=("api", "allowed_hosts"),
        default=[],
        metavar="NAME",
        help="a Host name the HTTP API answers to, besides IP addresses, localhost and the "
        "--listen host (repeatable; '*' for any name; the variable space- or "
        "comma-separated). Other names get 421: a guard against DNS rebinding",
    ),
    Option(
        dest="api_max_connections",
        kind=at_most(at_least(INT, 1), API_MAX_CONNECTIONS_MAX),
        flags=("--api-max-connections",),
        env="AUTOSCALER_API_MAX_CONNECTIONS",
        key=("api", "max_connections"),
        default=API_MAX_CONNECTIONS,
        metavar="N",
        help="connections the HTTP API holds open at once at most (each costs a file "
        "descriptor, shared with the connections to Prometheus, AWS and Nomad); over it, "
        "the connection idle the longest is closed, else the oldest still sending its "
        "request's body (408), or with a request being handled on each, the new one gets 503",
    ),
    Option(
        dest="log_decisions",
        kind=choice("all", "changes"),
        flags=("--log-decisions",),
        env="AUTOSCALER_LOG_DECISIONS",
        key=("log", "decisions"),
        default="all",
        help="which decisions get a log line: all, or changes (all but those to stay at "
        "the current count without any error: every scale, hold and failure); "
        "/v1/decisions and the metrics keep every decision",
    ),
    Option(
        dest="metrics_histograms",
        kind=choice("per-policy", "total"),
        flags=("--metrics-histograms",),
        env="AUTOSCALER_METRICS_HISTOGRAMS",
        key=("metrics", "histograms"),
        default="per-policy",
        help="the evaluation and query duration histograms on /metrics: per-policy (labels "
        "policy and check), or total (no such labels: one histogram each, for thousands "
        "of policies)",
    ),
    Option(
        dest="workers",
        kind=at_most(at_least(INT, 1), WORKERS_MAX),
        flags=("--workers",),
        env="AUTOSCALER_WORKERS",
        key=("workers",),
        default=4,
        help="policies evaluated at once at most",
    ),
    Option(
        dest="reload_interval",
        kind=at_most(at_least(NUMBER, 0, unit=" s"), DAY, unit=" s"),
        flags=("--reload-interval",),
        env="AUTOSCALER_RELOAD_INTERVAL",
        key=("reload_interval",),
        default=5.0,
        help="seconds between checks of the policy files for changes (0: only on SIGHUP or "
        "POST /v1/reload)",
    ),
    Option(
        dest="discovery_interval",
        kind=at_most(at_least(NUMBER, 0.1, unit=" s"), DAY, unit=" s"),
        flags=("--discovery-interval",),
        env="AUTOSCALER_DISCOVERY_INTERVAL",
        key=("discovery_interval",),
        default=30.0,
        help="seconds between two reads of the Auto Scaling Groups that templates discover "
        "by tags (Nomad is watched, not polled)",
    ),
    Option(
        dest="scale_up_unrecorded",
        kind=BOOL,
        flags=("--scale-up-unrecorded",),
        env="AUTOSCALER_SCALE_UP_UNRECORDED",
        key=("scale_up_unrecorded",),
        default=False,
        help="scale up even while the state database cannot record it (kept in memory and "
        "written once it can; with --ha, a replica that takes over before then does not "
        "know of it); by default such a scale-up is held, as a scale-in always is",
    ),
    Option(
        dest="history_days",
        kind=at_most(at_least(NUMBER, 0, above=True), HISTORY_DAYS_MAX),
        flags=("--history-days",),
        env="AUTOSCALER_HISTORY_DAYS",
        key=("history", "days"),
        default=14.0,
        help="keep recorded decisions this many days",
    ),
    Option(
        dest="history_max",
        kind=at_most(at_least(INT, 1), HISTORY_MAX_MAX),
        flags=("--history-max",),
        env="AUTOSCALER_HISTORY_MAX",
        key=("history", "max"),
        default=10000,
        help="keep at most this many recorded decisions",
    ),
    Option(
        dest="notify_url",
        kind=SPACED,
        flags=("--notify-url",),
        env="AUTOSCALER_NOTIFY_URLS",
        default=[],
        metavar="URL",
        help="webhook called after each scaling action (repeatable; Slack-compatible). "
        "Such URLs are secrets: prefer the variable (space-separated) or --notify-urls-file",
    ),
    Option(
        dest="notify_urls_file",
        flags=("--notify-urls-file",),
        env="AUTOSCALER_NOTIFY_URLS_FILE",
        key=("notify", "urls_file"),
        metavar="FILE",
        help="file holding webhook URLs, one per line (used when no --notify-url is given)",
    ),
)


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `autoscaler run` beyond the connection settings."""
    add_arguments(parser.add_argument_group("service"), SERVICE_OPTIONS)


HA_OPTIONS = (
    Option(
        dest="ha",
        kind=BOOL,
        flags=("--ha",),
        env="AUTOSCALER_HA",
        key=("ha", "enabled"),
        default=False,
        help="run as one of several replicas: the holder of the leader lease evaluates, the "
        "others stand by and take over",
    ),
    Option(
        dest="lease_ttl",
        kind=at_most(at_least(NUMBER, 1, unit=" s"), LEASE_TTL_MAX, unit=" s"),
        flags=("--lease-ttl",),
        env="AUTOSCALER_LEASE_TTL",
        key=("ha", "lease_ttl"),
        default=15.0,
        help="seconds a leader's lease lasts unless renewed (every third of it); a standby "
        "takes over within this plus one interval",
    ),
    Option(
        dest="replica_id",
        flags=("--replica-id",),
        env="AUTOSCALER_REPLICA_ID",
        key=("ha", "replica_id"),
        help="this replica's name in the lease, logs and API (default HOSTNAME-PID)",
    ),
)


def replica_id(args: argparse.Namespace) -> str:
    """This replica's name: `--replica-id` and the like, else HOSTNAME-PID."""
    return str(getattr(args, "replica_id", None) or f"{socket.gethostname()}-{os.getpid()}")


def add_ha_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of replicas sharing one PostgreSQL state database."""
    add_arguments(parser.add_argument_group("high availability (PostgreSQL --state)"), HA_OPTIONS)


def check_notify_url(url: str, source: str) -> None:
    """Raise `AutoscalerError` naming `source` (the flag, or FILE:LINE) when `url` is not an
    http(s) URL with a host that requests can send to. The URL itself is not shown: its
    path or credentials may be the webhook's secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parse_url(url)  # what requests sends through: it refuses what urlsplit lets by
        if host:
            host.encode("idna")  # as the connection will: a label over 63 characters fails
    except ValueError as exc:  # LocationParseError and UnicodeError are ValueErrors too
        raise AutoscalerError(
            f"{source}: the notification URL cannot be parsed ({type(exc).__name__}); "
            "write it as https://HOST/PATH"
        ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise AutoscalerError(
            f"{source}: a notification URL must be http:// or https:// with a host, "
            f"not {parts.scheme + '://…' if parts.scheme else 'a relative one'}"
        )


_RANK = {"flag": 3, "env": 2, "file": 1, "default": 0}


def _listed_urls_win(args: argparse.Namespace, urls: list[str]) -> bool:
    """Whether the URLs given as such (`--notify-url`, AUTOSCALER_NOTIFY_URLS) win over
    the URLs file: by the options' precedence (flag > variable > config file), and on a
    tie (`--notify-url` and `--notify-urls-file`; both variables) the URLs themselves."""
    if not urls:
        return False
    return _RANK[source_of(args, "notify_url")] >= _RANK[source_of(args, "notify_urls_file")]


def service_config_from_args(args: argparse.Namespace) -> ServiceConfig:
    """The service's options from resolved `args` (see `options.resolve`).

    Raises AutoscalerError when the notify URLs file cannot be read.
    """
    urls = list(args.notify_url or ())
    where = ["--notify-url"] * len(urls)
    if args.notify_urls_file and not _listed_urls_win(args, urls):
        text = read_secret_file(args.notify_urls_file, "notify.urls_file")
        numbered = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
        urls = [line for _, line in numbered if line]
        where = [f"{args.notify_urls_file}:{n}" for n, line in numbered if line]
    for url, source in zip(urls, where, strict=True):
        check_notify_url(url, source)
        register_url(url, whole=True)
    return ServiceConfig(
        paths=tuple(args.paths),
        dry_run=bool(args.dry_run),
        listen=args.listen,
        api_token_file=args.api_token_file,
        api_max_connections=int(args.api_max_connections),
        workers=int(args.workers),
        reload_interval=float(args.reload_interval),
        notify_urls=tuple(urls),
        allowed_hosts=tuple(args.allowed_host),
        insecure_no_auth=bool(args.insecure_no_auth),
        discovery_interval=float(args.discovery_interval),
        log_decisions=str(args.log_decisions),
        metrics_histograms=str(args.metrics_histograms),
        scale_up_unrecorded=bool(args.scale_up_unrecorded),
    )
