"""The AWS client every ASG target of a region and AWS configuration shares, and how it is
built: from the standard credential chain, botocore's own retries off, its connection pool
bounded, its requests counted (`aws_calls`) and bound by their caller's deadline.

A boto3 session and client cost ~9 MB and ~0.15 s of CPU to build: every `AsgScaler` of a
region and AWS configuration shares one client (`shared_client`; boto3 clients are
thread-safe), whose connection pool is bounded (`POOL_SIZE`). Groups of one client read at
the same moment share one DescribeAutoScalingGroups call (`aws_batch.GroupReads`). Once
a client is built, its session lets go of botocore's table of every AWS endpoint
(`release_endpoint_tables`), 7 MB that only building another client would need.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError

from autoscaler.adapters import send_by
from autoscaler.adapters.deadline import monotonic
from autoscaler.adapters.targets import aws_calls
from autoscaler.adapters.targets.aws_activity import ActivityFeed
from autoscaler.adapters.targets.aws_batch import GroupReads
from autoscaler.adapters.targets.aws_errors import is_transient
from autoscaler.errors import TargetDeadline, TargetError, TargetForbidden
from autoscaler.redact import Slot, register, scrub

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_autoscaling.type_defs import AutoScalingGroupTypeDef

# The target's logger: the warning of `check_sends` keeps the name it has always had.
log = logging.getLogger("autoscaler.adapters.targets.aws_asg")

# Connections kept open per client (region and AWS configuration) for reuse.
POOL_SIZE = 10

_sessions: dict[tuple[tuple[str, str], ...], boto3.session.Session] = {}
_Shared = tuple["AutoScalingClient", GroupReads["AutoScalingGroupTypeDef"], ActivityFeed]
_clients: dict[tuple[object, ...], _Shared] = {}
_clients_lock = threading.Lock()
# A configuration in which no credentials were found: when the chain was last tried
# (`monotonic()`), and what it said. No client is kept without credentials (botocore's
# would never look again, however the configuration is fixed); the chain is tried again
# at most every `CREDENTIALS_RETRY` seconds (an instance role may take an IMDS timeout).
_uncredentialed: dict[tuple[tuple[str, str], ...], tuple[float, str]] = {}
CREDENTIALS_RETRY = 30.0


def shared_client(region: str | None, deadline: float) -> AutoScalingClient:
    """The `autoscaling` client for `region` shared by every target that uses the same AWS
    configuration (the `AWS_*` environment: credentials, profile, endpoint, region).

    Built on first use (`make_client`) from one boto3 session per AWS configuration; a
    failure to build is not remembered, so a fixed configuration takes effect at once.
    """
    return shared(region, deadline)[0]


def group_reads(client: AutoScalingClient) -> GroupReads[AutoScalingGroupTypeDef]:
    """Reads of groups through `client`, many groups per DescribeAutoScalingGroups call."""

    def describe(names: Sequence[str]) -> list[AutoScalingGroupTypeDef]:
        answer = client.describe_auto_scaling_groups(
            AutoScalingGroupNames=list(names), MaxRecords=100
        )
        return answer["AutoScalingGroups"]

    return GroupReads(describe, lambda group: group["AutoScalingGroupName"], transient=is_transient)


def forget_shared_reads() -> None:
    """Make every shared client's reads start afresh: its activity feed scans again
    (`ActivityFeed.forget`), its group reads know no group (`GroupReads.forget`). For
    whoever replaced the AWS state under them, as tests do between two tests."""
    with _clients_lock:
        shared = list(_clients.values())
    for _, reads, activities in shared:
        reads.forget()
        activities.forget()


def feed(client: AutoScalingClient) -> ActivityFeed:
    """The scaling activities of every group `client` reads, one scan for all (`aws_activity`)."""
    return ActivityFeed(
        lambda params: client.describe_scaling_activities(**params), monotonic=monotonic
    )


def shared(region: str | None, deadline: float) -> _Shared:
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    key = (region or "", deadline, env)
    with _clients_lock:  # a boto3 session is not thread-safe; its clients are
        shared = _clients.get(key)
        if shared is None:
            tried = _uncredentialed.get(env)
            if tried is not None and monotonic() - tried[0] < CREDENTIALS_RETRY:
                raise TargetForbidden(tried[1])
            session = _sessions.get(env)
            if session is None:
                session = _sessions[env] = _session()
            if _credentials(session) is None:
                del _sessions[env]  # a new session reads the files and the instance role again
                problem = (
                    "no AWS credentials found; configure the standard chain (environment, "
                    "shared config/credentials file, or an instance role); looked for again "
                    f"every {CREDENTIALS_RETRY:g} s"
                )
                _uncredentialed[env] = (monotonic(), problem)
                raise TargetForbidden(problem)
            _uncredentialed.pop(env, None)
            client = make_client(region, deadline, session=session)
            shared = _clients[key] = (client, group_reads(client), feed(client))
        return shared


def _credentials(session: boto3.session.Session) -> object | None:
    """The session's credentials, None when the chain found none."""
    try:
        return session.get_credentials()
    except BotoCoreError as exc:
        raise TargetError(f"AWS configuration: {scrub(str(exc))}") from exc


def make_client(
    region: str | None, deadline: float, *, session: boto3.session.Session | None = None
) -> AutoScalingClient:
    """A new `autoscaling` client from the standard credential chain, with retries off.

    The endpoint comes from the environment too (`AWS_ENDPOINT_URL`, or the per-service
    `AWS_ENDPOINT_URL_AUTO_SCALING`), which is how tests point it at moto. The credentials
    in use are registered as secrets (`autoscaler.redact`), temporary ones as they are sent.
    """
    session = session or _session()
    # boto3 reads only AWS_DEFAULT_REGION; the other SDKs and the docs use AWS_REGION too.
    region = region or os.environ.get("AWS_REGION") or session.region_name
    if region is None:
        raise TargetError("no AWS region: set target.region or AWS_REGION/AWS_DEFAULT_REGION")
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=min(3.0, deadline),
        read_timeout=min(10.0, deadline),
        max_pool_connections=POOL_SIZE,
        user_agent_extra="autoscaler",
    )
    try:
        client = session.client("autoscaling", region_name=region, config=config)
        credentials = session.get_credentials()
    except BotoCoreError as exc:
        raise TargetError(f"AWS configuration: {scrub(str(exc))}") from exc
    release_endpoint_tables(session)
    if credentials is not None and not isinstance(credentials, RefreshableCredentials):
        register(credentials.access_key, credentials.secret_key, credentials.token)
    client.meta.events.register("before-send.autoscaling", _session_token_registrar())
    check_sends(client)
    # Last: after `bound_request`, which may refuse to send it.
    client.meta.events.register_last("before-send.autoscaling", _counter(region))
    return client


def check_sends(client: AutoScalingClient) -> None:
    """Have `client`'s connections refuse to open or write a request at or after its
    caller's deadline (`send_by`).

    botocore takes no connection classes of ours, so they go into the client's HTTP session
    (its connection pools' classes, shared by its proxies' pools): botocore internals.
    Where a version of botocore has them otherwise, nothing is touched and a warning is
    logged. Idempotent.
    """
    http = getattr(getattr(client, "_endpoint", None), "http_session", None)
    pools = getattr(http, "_pool_classes_by_scheme", None)
    shared = getattr(getattr(http, "_manager", None), "pool_classes_by_scheme", None) is pools
    if isinstance(pools, dict) and shared:  # the pools' classes, and its manager's
        pools.update(send_by.checked_pools(pools))
        return
    log.warning(
        "this botocore keeps its connection pools otherwise: a SetDesiredCapacity whose "
        "connection opens late may be sent after the leader lease ends"
    )


def release_endpoint_tables(session: boto3.session.Session) -> bool:
    """Let `session` drop the data files it parsed to build a client; True if it did.

    To build a client, botocore parses its table of every AWS endpoint (`endpoints.json`,
    7 MB of Python objects) and keeps it, with the other data files it read, in the
    session's endpoint resolver and its loader's cache for the session's lifetime. The
    client keeps what it needs of them (its service model, its endpoint rules) on its own;
    the rest serves only to build more clients, once per region. So the resolver is set
    back to load lazily and the cache is emptied: the next client built reads them again
    (a few tenths of a second, once per region). These are botocore internals; where a
    version of botocore has them otherwise, nothing is touched and False is returned.
    """
    core = getattr(session, "_session", None)
    register = getattr(core, "_register_endpoint_resolver", None)
    try:
        loader = core.get_component("data_loader") if core is not None else None
    except Exception:  # an unknown botocore: keep its tables
        return False
    cache = getattr(loader, "_cache", None)
    if not callable(register) or not isinstance(cache, dict):
        return False
    register()  # lazily, as a new session does: built again only if asked for
    cache.clear()
    return True


def _counter(region: str) -> Callable[..., None]:
    """A before-send handler counting each request (`aws_calls`) by region and action."""

    def counted(event_name: str = "", **_kwargs: Any) -> None:
        aws_calls.count(region, event_name.rsplit(".", 1)[-1])

    return counted


def _session() -> boto3.session.Session:
    try:
        return boto3.session.Session()
    except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
        raise TargetError(f"AWS configuration: {scrub(str(exc))}") from exc


def bound_request(request: Any, **_kwargs: Any) -> None:
    """Ends the read timeout of a request sent under a caller's deadline by that deadline
    (botocore's per-request `read_timeout`), and refuses to send it once it has come."""
    until = send_by.deadline()
    if until is None:
        return
    left = until - monotonic()
    if left <= 0:
        raise TargetDeadline("the request was not sent: the caller's deadline came first")
    config = request.context.get("client_config")
    cap = config.read_timeout if config is not None and config.read_timeout else left
    request.context["read_timeout"] = min(cap, left)


def _session_token_registrar() -> Callable[..., None]:
    """A before-send handler for one client, registering the session token of temporary
    credentials (refreshed behind our back) as a secret as it is sent. The client's own
    `Slot` holds it: the current token and the one before, not every token of the
    process's life (an hourly refresh would otherwise grow the registry without end)."""
    slot = Slot()

    def register_session_token(request: Any, **_kwargs: Any) -> None:
        token = request.headers.get("X-Amz-Security-Token")
        if token:
            slot.set(token.decode() if isinstance(token, bytes) else str(token))

    return register_session_token
