"""The AWS client every ASG target of a region and AWS configuration shares, and how it is
built: from the standard credential chain, botocore's own retries off, its connection pool
bounded, its requests counted (`aws_calls`) and bound by their caller's deadline.

A boto3 session and client cost ~9 MB and ~0.15 s of CPU to build: every `AsgScaler` of a
region and AWS configuration shares one client (`shared_client`; boto3 clients are
thread-safe), whose connection pool is bounded (`POOL_SIZE`). Groups of one client read at
the same moment share one DescribeAutoScalingGroups call (`aws_batch.GroupReads`). Once
a client is built, its session lets go of botocore's table of every AWS endpoint
(`release_endpoint_tables`), 7 MB that only building another client would need.

botocore reads static credentials (the environment's, a credentials file's) once, when
the session first needs them, and never again: when an operator's tooling rotates the key
in the file (the old one deleted in IAM), AWS rejects every call of the shared clients.
So a call AWS answers with an authentication error (`aws_errors.rejects_credentials`)
reads the credential chain again in a new session, rebuilds the client from it and is
sent once more (`SharedClient.renew`), at most once per `CREDENTIALS_REREAD` seconds per
AWS configuration. The chain is read without the clients' lock, in a thread of its own
(`aws_chain`), one reading at a time: the others go on with the client they have, and a
call rejected waits for that reading no longer than its caller's deadline or its
client's. (Credentials botocore obtains itself, with an expiry, it renews itself
before they end: a role's, a web identity's, SSO's, a `credential_process`'s.)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from autoscaler.adapters import send_by
from autoscaler.adapters.deadline import monotonic
from autoscaler.adapters.targets import aws_calls
from autoscaler.adapters.targets.aws_activity import ActivityFeed
from autoscaler.adapters.targets.aws_batch import GroupReads
from autoscaler.adapters.targets.aws_chain import (
    Reading,
    Renewal,
    StillRejected,
    credentials,
    new_session,
)
from autoscaler.adapters.targets.aws_errors import is_transient, rejects_credentials
from autoscaler.errors import TargetDeadline, TargetError, TargetForbidden
from autoscaler.redact import Slot, register, scrub

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_autoscaling.type_defs import AutoScalingGroupTypeDef

# The target's logger: the warning of `check_sends` keeps the name it has always had.
log = logging.getLogger("autoscaler.adapters.targets.aws_asg")

T = TypeVar("T")

# Connections kept open per client (region and AWS configuration) for reuse.
POOL_SIZE = 10

_Env = tuple[tuple[str, str], ...]  # the `AWS_*` environment: one AWS configuration
_sessions: dict[_Env, boto3.session.Session] = {}
_clients: dict[tuple[object, ...], SharedClient] = {}
_clients_lock = threading.Lock()  # also guards `_sessions`, `_reread`, `_reading`, swaps
# A configuration in which no credentials were found: when the chain was last tried
# (`monotonic()`), and what it said. No client is kept without credentials (botocore's
# would never look again, however the configuration is fixed); the chain is tried again
# at most every `CREDENTIALS_RETRY` seconds (an instance role may take an IMDS timeout).
_uncredentialed: dict[_Env, tuple[float, str]] = {}
CREDENTIALS_RETRY = 30.0

CREDENTIALS_REREAD = 30.0
"""Seconds between two readings of one AWS configuration's credentials after AWS rejected
them (`SharedClient.renew`): a key rotated in the credentials file is picked up by the
first call it fails, while a key that is simply wrong is not read again (a new session, a
new client: ~0.15 s of CPU, an instance role's IMDS lookup) at every call of every target."""
# When each AWS configuration's credentials were last read again (`monotonic()`), and
# what to add when that reading failed.
_reread: dict[_Env, tuple[float, str]] = {}
_reading: dict[_Env, Reading] = {}  # the readings under way, one per configuration


class SharedClient:
    """The `autoscaling` client of one region, deadline and AWS configuration (`client`),
    the group reads and activity scan that go through it, and its renewal when AWS rejects
    its credentials (`renew`). Thread-safe: `client` is replaced whole, never changed.

    `given(client)` wraps a client built elsewhere (tests), which is never rebuilt.
    """

    def __init__(
        self,
        client: AutoScalingClient,
        *,
        session: boto3.session.Session | None = None,
        env: _Env | None = None,
        deadline: float = 0.0,
    ) -> None:
        self._session, self._env, self._deadline = session, env, deadline
        self.client = self._install(client)
        self.reads = group_reads(lambda: self.client)
        self.feed = feed(lambda: self.client)

    @classmethod
    def given(cls, client: AutoScalingClient) -> SharedClient:
        """`client`, built elsewhere, its sends checked (`check_sends`); never rebuilt."""
        check_sends(client)
        return cls(client)

    def renew(self, rejected: AutoScalingClient, *, by: float | None = None) -> Renewal:
        """After AWS rejected the credentials `rejected` (this object's client when the call
        was sent) signed with: whether the call may be sent once more with `client`, and if
        not, why not (`aws_chain.Renewal`).

        `client` is rebuilt from a new session, which walks the credential chain again (a
        rotated credentials file is read), at most once per `CREDENTIALS_REREAD` seconds per
        AWS configuration; one that another client of the configuration read since is used
        without reading again, and a client another thread renewed already is used as is.
        The chain is walked without the lock, in a thread of its own (it may take seconds:
        SSO, STS, instance metadata, a `credential_process`, which may hang): every other
        call goes on with the client it has, and every rejected call, the one that started
        the reading too, waits for it until `by` at most (its caller's deadline, an instant
        of `monotonic()`), and never more than the client's deadline. The reading goes on
        after, and the next rejected call uses what it read (`aws_chain.Reading`).
        """
        if self._env is None:
            return Renewal(False)  # a client given to us: nothing to read again
        env = self._env
        with _clients_lock:
            done = self._renewed(rejected)
            if done is not None:
                return Renewal(done, None if done else self.reread())
            reading = _reading.get(env)
            if reading is None:
                last = _reread.get(env)
                if last is not None and monotonic() - last[0] < CREDENTIALS_REREAD:
                    return Renewal(False, self.reread())
                reading = _reading[env] = Reading(monotonic())
                reading.start(self._session, partial(_ended, env, reading))
        wait = self._deadline if by is None else min(self._deadline, by - monotonic())
        if not reading.done.wait(max(0.0, wait)):  # the rejection stands, said as it is now
            return Renewal(False, reading.under_way(monotonic()))
        with _clients_lock:
            done = bool(self._renewed(rejected))
            return Renewal(done, None if done else self.reread())

    def _renewed(self, rejected: AutoScalingClient) -> bool | None:
        """(Lock held.) True when `client` is no longer `rejected` or was built again from
        the credentials another client of the configuration read since; False if it could
        not be; None when neither: the chain is to be read again."""
        if self.client is not rejected:
            return True  # renewed by another call meanwhile
        latest = _sessions.get(self._env) if self._env is not None else None
        if latest is not None and latest is not self._session:
            return self._rebuild(latest)
        return None

    def reread(self, rejection: BaseException | None = None) -> str | None:
        """When the credentials were last read again after AWS rejected them (`renew`), if
        within `CREDENTIALS_REREAD` seconds, or that they are being read: for the message
        of a rejection. For a `rejection` that `send_renewing` let stand, what `renew` said
        then."""
        if self._env is None:
            return None
        if isinstance(rejection, StillRejected):
            return rejection.why  # what the call was told: the state may have moved since
        # Without the lock (one dict read is atomic): every failed call asks.
        reading = _reading.get(self._env)
        if reading is not None:
            return reading.under_way(monotonic())
        last = _reread.get(self._env)
        if last is None or monotonic() - last[0] >= CREDENTIALS_REREAD:
            return None
        ago = monotonic() - last[0]
        return (
            f"the credentials were read again {ago:.0f}s ago{last[1]}; they are read again "
            f"at most every {CREDENTIALS_REREAD:g} s"
        )

    def _rebuild(self, session: boto3.session.Session) -> bool:
        """`client` built again from `session` (lock held); False if it could not be."""
        region = self.client.meta.region_name
        try:
            client = make_client(region, self._deadline, session=session)
        except TargetError as exc:
            log.warning("the %s client could not be built again: %s", region, exc)
            return False
        self._session, self.client = session, self._install(client)
        log.warning(
            "AWS rejected the credentials of the %s client: read them again from the "
            "credential chain and built it again; the call is sent once more",
            region,
        )
        return True

    @staticmethod
    def _install(client: AutoScalingClient) -> AutoScalingClient:
        # Idempotent (one handler per client, whoever registers it first).
        client.meta.events.register(
            "before-send.autoscaling", bound_request, unique_id="autoscaler-deadline"
        )
        return client


def _ended(env: _Env, reading: Reading, session: boto3.session.Session | None, said: str) -> None:
    """`reading` of `env`'s chain ended: `session` (None: `said` why not) is kept for the
    clients of the configuration, rejected or not yet, to be built again from."""
    with _clients_lock:
        _reading.pop(env, None)
        _reread[env] = (reading.started, said)
        if session is not None:
            _sessions[env] = session


def send_renewing(
    shared: SharedClient,
    send: Callable[[], T],
    *,
    again: Callable[[], bool] | None = None,
    by: float | None = None,
) -> T:
    """`send()` (a call through `shared.client`), sent once more when AWS rejected the
    credentials it was signed with and they could be read again (`SharedClient.renew`),
    waiting for that reading until `by` at most (the caller's deadline: an instant of
    `monotonic()`). A rejection that stands comes out as `StillRejected`, saying why.

    A rejection for credentials changed nothing, so sending once more is safe; `again()`,
    asked after the reading, says whether it still is (False: a write an earlier attempt
    of which got no answer, and may have landed), else the rejection stands.
    """
    used = shared.client
    try:
        return send()
    except ClientError as exc:
        if not rejects_credentials(exc):
            raise
        renewal = shared.renew(used, by=by)
        if not renewal:
            raise StillRejected(exc, renewal.why) from exc
        if again is not None and not again():
            raise
    return send()


def shared_client(region: str | None, deadline: float) -> AutoScalingClient:
    """The `autoscaling` client for `region` shared by every target that uses the same AWS
    configuration (the `AWS_*` environment: credentials, profile, endpoint, region).

    Built on first use (`make_client`) from one boto3 session per AWS configuration; a
    failure to build is not remembered, so a fixed configuration takes effect at once.
    """
    return shared(region, deadline).client


def group_reads(
    client: Callable[[], AutoScalingClient],
) -> GroupReads[AutoScalingGroupTypeDef]:
    """Reads of groups through `client()` (the client of the moment), many groups per
    DescribeAutoScalingGroups call."""

    def describe(names: Sequence[str]) -> list[AutoScalingGroupTypeDef]:
        answer = client().describe_auto_scaling_groups(
            AutoScalingGroupNames=list(names), MaxRecords=100
        )
        return answer["AutoScalingGroups"]

    return GroupReads(describe, lambda group: group["AutoScalingGroupName"], transient=is_transient)


def forget_shared_reads() -> None:
    """Make every shared client's reads start afresh: its activity feed scans again
    (`ActivityFeed.forget`), its group reads know no group (`GroupReads.forget`), and
    rejected credentials may be read again at once (`CREDENTIALS_REREAD`). For whoever
    replaced the AWS state under them, as tests do between two tests."""
    with _clients_lock:
        shared = list(_clients.values())
        _reread.clear()
    for one in shared:
        one.reads.forget()
        one.feed.forget()


def feed(client: Callable[[], AutoScalingClient]) -> ActivityFeed:
    """The scaling activities of every group `client()` reads, one scan for all
    (`aws_activity`)."""
    return ActivityFeed(
        lambda params: client().describe_scaling_activities(**params), monotonic=monotonic
    )


def shared(region: str | None, deadline: float) -> SharedClient:
    """The `SharedClient` of `region`, `deadline` and the AWS configuration of the moment."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    key = (region or "", deadline, env)
    with _clients_lock:  # a boto3 session is not thread-safe; its clients are
        found = _clients.get(key)
        if found is None:
            tried = _uncredentialed.get(env)
            if tried is not None and monotonic() - tried[0] < CREDENTIALS_RETRY:
                raise TargetForbidden(tried[1])
            session = _sessions.get(env)
            if session is None:
                session = _sessions[env] = new_session()
            if credentials(session) is None:
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
            found = _clients[key] = SharedClient(
                client, session=session, env=env, deadline=deadline
            )
        return found


def make_client(
    region: str | None, deadline: float, *, session: boto3.session.Session | None = None
) -> AutoScalingClient:
    """A new `autoscaling` client from the standard credential chain, with retries off.

    The endpoint comes from the environment too (`AWS_ENDPOINT_URL`, or the per-service
    `AWS_ENDPOINT_URL_AUTO_SCALING`), which is how tests point it at moto. The credentials
    in use are registered as secrets (`autoscaler.redact`), temporary ones as they are sent.
    """
    session = session or new_session()
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
