"""The EC2 Auto Scaling Group target: reads and sets an ASG's DesiredCapacity through boto3.

botocore's own retries are turned off so that one bounded, logged retry loop (tenacity)
decides what is worth retrying (throttling, 5xx, broken connections) and for how long;
everything else becomes one of our `TargetError`s at once, with a message that says what
to fix (the IAM action to grant, the AWS validation message).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_random_exponential,
)

from autoscaler.adapters import send_by
from autoscaler.adapters.deadline import Budget, after_unanswered, monotonic
from autoscaler.adapters.exhausted import out_of_resources
from autoscaler.adapters.targets import aws_calls
from autoscaler.adapters.targets.aws_activity import FINISHED_ACTIVITY, ActivityFeed
from autoscaler.adapters.targets.aws_batch import GroupReads
from autoscaler.adapters.targets.moved import Landed, landed_or_moved, moved_since
from autoscaler.core.model import AsgTarget, TargetStatus
from autoscaler.errors import (
    TargetBusy,
    TargetDeadline,
    TargetError,
    TargetForbidden,
    TargetNotFound,
    TargetUnavailable,
)
from autoscaler.redact import Slot, register, scrub

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_autoscaling.type_defs import (
        ActivityTypeDef,
        AutoScalingGroupTypeDef,
        InstanceRefreshTypeDef,
    )

log = logging.getLogger(__name__)

T = TypeVar("T")

# Error codes AWS uses for "slow down"; the same list botocore's standard mode retries on.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# The group refuses a change for now; checked before the HTTP status, because AWS sends
# ResourceContention with HTTP 500. Not retried: the reconciler holds and tries next time.
BUSY_CODES = frozenset({"ScalingActivityInProgress", "ResourceContention", "ResourceInUse"})
PERMISSION_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
# The credentials themselves are rejected (unknown key, expired session, bad signature).
CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "MissingAuthenticationToken",
        "IncompleteSignature",
    }
)

# Statuses of instance refreshes that are not over.
RUNNING_REFRESH = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})
# How the Description of an activity that starts an instance begins (lowercased).
LAUNCH_MARK = "launching a new ec2 instance"
# Seconds a group's instance refreshes found none running are trusted while its instances
# and desired capacity stay as they were (`AsgScaler._running_refreshes`).
REFRESH_CHECK = 300.0
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


class AsgScaler:
    """`ScalingTarget` for one Auto Scaling Group: count is its DesiredCapacity.

    `deadline` (seconds) bounds the retries of one `status()` or `scale()` (throttling,
    5xx, connection errors), all its API calls together; once it is spent the operation
    fails with `TargetUnavailable`. An attempt already under way may still take up to the
    client's read timeout (at most `deadline`, capped at 10 s), so the worst case is a
    little over it. A caller's deadline (`scale(deadline=)`, the leader lease) is stricter:
    no attempt starts at or after it, and each SetDesiredCapacity request's read timeout
    ends by it (`adapters.deadline`); its connection, if it must open one, neither opens
    nor writes the request at or after it (`adapters.send_by`).
    """

    def __init__(
        self,
        ref: AsgTarget,
        *,
        client: AutoScalingClient | None = None,
        deadline: float = 10.0,
    ) -> None:
        self._ref = ref
        self._deadline = deadline
        if client is None:
            self._client, self._reads, self._feed = _shared(ref.region, deadline)
        else:
            check_sends(client)
            self._client, self._reads, self._feed = client, group_reads(client), feed(client)
        self._refreshes: _Refreshes | None = None  # the last read, while it may be kept
        self._refresh_reads = 0
        self._refresh_lock = threading.Lock()
        self._reads.know(ref.asg)  # so its group can ride along in other targets' reads
        # Idempotent (one handler per client, whoever registers it first).
        self._client.meta.events.register(
            "before-send.autoscaling", _bound_request, unique_id="autoscaler-deadline"
        )
        self._region = self._client.meta.region_name

    def status(self) -> TargetStatus:
        """DesiredCapacity and bounds; not ready while an activity or instance refresh runs,
        or while the group's Launch or Terminate process is suspended.

        While every activity in progress launches instances (a scale-up under way), a
        further scale-up is allowed (`scale_up_allowed`): only a scale-down waits for them.

        The group is read with the other groups read now, or was fetched along with them
        at most 2 s before (`aws_batch`); its activities come from the region's shared
        scan (`aws_activity`: at most `FRESH` seconds old); its instance refreshes are read
        again only when the last read found one running, the group's instances or desired
        capacity changed since, or `REFRESH_CHECK` seconds passed (`_running_refreshes`).
        """
        until = Budget(seconds=self._deadline)
        group = self._describe_group(until)
        recent = self._feed.recent(
            self._ref.asg,
            lambda fn: self._call(until, "DescribeScalingActivities", fn, where=self._region_wide),
            wait=until.left(),
        )
        refreshes = self._running_refreshes(group, until)
        reasons, launching = _busy_reasons(group, recent.running, refreshes)
        return TargetStatus(
            count=group["DesiredCapacity"],
            ready=not reasons,
            not_ready_reason="; ".join(reasons) or None,
            scale_up_allowed=bool(reasons) and launching,
            min_size=group["MinSize"],
            max_size=group["MaxSize"],
            last_scaled_at=recent.last_change,
        )

    def _refuse_units(self, group: AutoScalingGroupTypeDef) -> None:
        """Raise `TargetError` when the group's capacity is not a number of instances."""
        units = capacity_units(group)
        if units is not None:
            raise TargetError(
                f"{self._where()} counts its capacity in {units}, not in instances: the "
                "counts a policy decides would be read as those units (20 instances "
                "set as 20 vCPUs is a scale-in); give the group instance units (no "
                "DesiredCapacityType or `units`, every WeightedCapacity 1) or scale it "
                "another way"
            )

    def _running_refreshes(
        self, group: AutoScalingGroupTypeDef, until: Budget
    ) -> Sequence[InstanceRefreshTypeDef]:
        """The group's instance refreshes in progress.

        DescribeInstanceRefreshes takes one group: read on every status it would be one
        call per target per evaluation. A refresh replaces instances, which shows in the
        group's description (instances pending or terminating); an operator starting one
        does not, until its first replacement. So the last answer is kept while it found
        none running, the group's instances and desired capacity are as they were, and it
        is younger than `REFRESH_CHECK`: a refresh just started is seen within that time.
        """
        shape = _shape(group)
        kept = self._refreshes
        asked = monotonic()
        if kept is not None and kept.shape == shape and asked - kept.read_at < REFRESH_CHECK:
            return ()
        with self._refresh_lock:  # a preview may read at the same time as an evaluation
            self._refreshes = None
            self._refresh_reads += 1
            mine = self._refresh_reads
        found = self._call(
            until,
            "DescribeInstanceRefreshes",
            lambda: self._client.describe_instance_refreshes(AutoScalingGroupName=self._ref.asg),
        )["InstanceRefreshes"]
        running = [r for r in found if r.get("Status") in RUNNING_REFRESH]
        with self._refresh_lock:
            if not running and mine == self._refresh_reads:  # none started since: the latest
                self._refreshes = _Refreshes(read_at=asked, shape=shape)
        return running

    def scale(
        self,
        count: int,
        *,
        reason: str,
        meta: Mapping[str, str],
        expected: int | None = None,
        deadline: float | None = None,
    ) -> None:
        """Set DesiredCapacity to `count`, ignoring the ASG's own cooldown (ours applies).

        An ASG has nowhere to store `reason` and `meta`, so they are only logged. The group
        is read first (autoscaling:DescribeAutoScalingGroups) so that a missing group is
        `TargetNotFound`, a count outside its MinSize..MaxSize is refused here, and a
        DesiredCapacity someone changed since `expected` was read is `TargetBusy`, as is a
        Launch process suspended since (or Terminate, for a scale-in).
        (SetDesiredCapacity has no condition: this narrows the race to the two calls.)
        With `expected`, a SetDesiredCapacity retried (throttling, 5xx: for seconds,
        perhaps) reads the group again first (`_again`): sent again only while the group
        still has the count read before the first attempt, done when it has `count` (an
        earlier attempt landed), `TargetBusy` when someone else moved it meanwhile.

        With `deadline`, neither call sends a request at or after it (`TargetDeadline`).
        """
        until = Budget(seconds=self._deadline, caller=deadline)
        group = self._describe_group(until, fresh=True)
        moved_since(self._where(), "DesiredCapacity", expected, group["DesiredCapacity"], count)
        # Suspended since the status was read: AWS would take the count and do nothing.
        suspended = suspended_processes(group)
        for process, blocks in (
            ("Launch", True),
            ("Terminate", count < group["DesiredCapacity"]),
        ):
            if process in suspended and blocks:
                raise TargetBusy(
                    f"{self._where()}: its {process} process was suspended: not scaled"
                )
        low, high = group["MinSize"], group["MaxSize"]
        if not low <= count <= high:
            raise TargetError(
                f"refusing to set {self._where()} to {count}: outside its "
                f"MinSize..MaxSize {low}..{high}"
            )
        log.info(
            "setting %s DesiredCapacity %d -> %d: %s %s",
            self._where(),
            group["DesiredCapacity"],
            count,
            reason,
            dict(meta),
        )
        self._reads.drop(self._ref.asg)  # no answer sent before this one is kept
        before = group["DesiredCapacity"]
        try:
            self._call(
                until,
                "SetDesiredCapacity",
                lambda: self._client.set_desired_capacity(
                    AutoScalingGroupName=self._ref.asg, DesiredCapacity=count, HonorCooldown=False
                ),
                write=True,
                again=None if expected is None else lambda: self._again(until, before, count),
            )
        except Landed as landed:
            log.info("%s", landed)
        finally:  # a failed call may have landed all the same (an answer that timed out)
            self._reads.drop(self._ref.asg)

    def _again(self, until: Budget, before: int, count: int) -> None:
        """Return when SetDesiredCapacity to `count` may be sent again: the group, read
        afresh, still has the DesiredCapacity `before` it (`moved.landed_or_moved`)."""
        now = self._describe_group(until, fresh=True)["DesiredCapacity"]
        landed_or_moved(self._where(), "DesiredCapacity", before, now, count)

    # --- helpers ----------------------------------------------------------------------

    def _describe_group(self, until: Budget, *, fresh: bool = False) -> AutoScalingGroupTypeDef:
        """The group as AWS describes it now (read together with other groups read now), or
        unless `fresh`, as fetched along with them at most `aws_batch.FRESH` s ago."""
        group: AutoScalingGroupTypeDef | None = self._call(
            until,
            "DescribeAutoScalingGroups",
            lambda: self._reads.read(self._ref.asg, fresh=fresh),
        )
        if group is None:
            raise TargetNotFound(
                f"Auto Scaling Group {self._ref.asg!r} not found in region {self._region}"
            )
        self._refuse_units(group)  # what the status and the scale call read alike
        return group

    def _where(self) -> str:
        return f"Auto Scaling Group {self._ref.asg!r} ({self._region})"

    @property
    def _region_wide(self) -> str:
        return f"the Auto Scaling Groups of {self._region} (one listing for all)"

    def _call(
        self,
        until: Budget,
        action: str,
        fn: Callable[[], T],
        *,
        write: bool = False,
        where: str | None = None,
        again: Callable[[], None] | None = None,
    ) -> T:
        """`fn()`, retried on transient failures while time remains in `until`.

        Errors come out translated into `TargetError`s. No retry starts a sleep that would
        end past `until`, so one operation's API calls share one deadline; with a caller's
        deadline, no attempt starts at or after it either (`TargetDeadline`). A `write`
        (SetDesiredCapacity) also has each request's read timeout end by it, and is not
        written at or after it by a connection opened late (`send_by`); reads are left
        their own, as a group read may carry other targets' groups too. `again` is asked
        before each retry (not the first attempt) whether the call is still to be sent; it
        raises when not (its errors end the call as they are).
        """
        what = f"{action} on {where or self._where()}"
        sent = 0
        unanswered_once = False  # a write sent and not answered: it may have landed

        def attempt() -> T:
            nonlocal sent, unanswered_once
            until.check(what, sent=sent)
            if sent and again is not None:
                again()
                until.check(what, sent=sent)
            sent += 1
            try:
                if until.caller is None or not write:
                    return fn()
                try:
                    with send_by.sending_by(until.caller):
                        return fn()
                except (TargetDeadline, HTTPClientError) as exc:
                    # Refused as it was about to go: by `_bound_request`, or by a connection
                    # that opened too late (`send_by`, which botocore's error wraps).
                    if send_by.refusal(exc) is None:
                        raise
                    sent -= 1
                    raise until.refused(what, sent=sent) from None
            except (ReadTimeoutError, ConnectionClosedError):
                unanswered_once = unanswered_once or write
                raise

        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(multiplier=0.1, max=min(2.0, self._deadline / 3)),
            stop=lambda state: until.stop(state.upcoming_sleep),
            before_sleep=_log_retry(action, where or self._where()),
            reraise=True,
        )
        try:
            try:
                return retrying(attempt)
            except (ClientError, BotoCoreError, ResponseParserError) as exc:
                unanswered = write and isinstance(exc, ReadTimeoutError | ConnectionClosedError)
                if until.cut and is_transient(exc):
                    last = _describe(exc)
                    raise until.over(what, sent=sent, last=last, unanswered=unanswered) from exc
                error = self._translate(action, exc, sent, where=where)
                if unanswered and isinstance(error, TargetUnavailable):
                    error.maybe_applied = True  # sent, never answered: it may have landed
                raise error from exc
        except TargetError as error:
            if unanswered_once:  # an earlier attempt may have landed, whatever came after
                raise after_unanswered(error, what) from error.__cause__
            raise

    def _translate(
        self, action: str, exc: Exception, attempts: int, *, where: str | None = None
    ) -> TargetError:
        """The `TargetError` that tells an operator what went wrong and what to do."""
        where = where or self._where()
        exhausted = out_of_resources(exc)
        if exhausted is not None:
            return TargetUnavailable(f"{action} on {where}: {exhausted}")
        if is_transient(exc):
            return TargetUnavailable(
                f"{action} on {where} kept failing ({attempts} attempts within the "
                f"{self._deadline:g}s deadline): {_describe(exc)}"
            )
        if isinstance(exc, NoCredentialsError):
            return TargetForbidden(
                f"{action} on {where}: no AWS credentials found; configure the standard "
                "chain (environment, shared config/credentials file, or an instance role)"
            )
        if not isinstance(exc, ClientError):
            return TargetError(f"{action} on {where} failed: {_describe(exc)}")
        code, message = _error(exc)
        if code in PERMISSION_CODES:
            return TargetForbidden(
                f"{action} on {where} was denied: grant the IAM action autoscaling:{action} "
                f"({code}: {message})"
            )
        if code in CREDENTIAL_CODES:
            return TargetForbidden(
                f"{action} on {where}: AWS rejected the credentials ({code}: {message})"
            )
        if code in BUSY_CODES:
            return TargetBusy(f"{where} refused {action} for now ({code}: {message})")
        if code == "ValidationError" and "not found" in message.lower():
            return TargetNotFound(f"{where}: {message}")
        if code == "ValidationError":
            return TargetError(f"{action} on {where} rejected by AWS: {message}")
        return TargetError(f"{action} on {where} failed: {code}: {message}")


def shared_client(region: str | None, deadline: float) -> AutoScalingClient:
    """The `autoscaling` client for `region` shared by every target that uses the same AWS
    configuration (the `AWS_*` environment: credentials, profile, endpoint, region).

    Built on first use (`make_client`) from one boto3 session per AWS configuration; a
    failure to build is not remembered, so a fixed configuration takes effect at once.
    """
    return _shared(region, deadline)[0]


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


def _shared(region: str | None, deadline: float) -> _Shared:
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
    # Last: after `_bound_request`, which may refuse to send it.
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


def _bound_request(request: Any, **_kwargs: Any) -> None:
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


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: throttling, 5xx, broken or timed-out connections."""
    if isinstance(exc, ClientError):
        code, _ = _error(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in BUSY_CODES:
            return False
        return code in THROTTLING_CODES or status >= 500
    if out_of_resources(exc) is not None:
        return False  # another attempt within the deadline would fail the same way
    # ResponseParserError: a proxy or load balancer answered with HTML instead of AWS XML.
    return isinstance(exc, ConnectionError | HTTPClientError | ResponseParserError)


@dataclass(frozen=True, slots=True)
class _Refreshes:
    """A read of a group's instance refreshes that found none running."""

    read_at: float  # `monotonic()` when it was asked
    shape: int  # `_shape` of the group then


def _shape(group: AutoScalingGroupTypeDef) -> int:
    """What of a group an instance refresh changes: its instances and their states (and
    the desired capacity, which anyone's scaling changes)."""
    instances = group.get("Instances", [])
    return hash(
        (
            group["DesiredCapacity"],
            tuple(sorted((i["InstanceId"], i["LifecycleState"]) for i in instances)),
        )
    )


def capacity_units(group: Mapping[str, Any]) -> str | None:
    """What the group's Min/Max/DesiredCapacity count when it is not instances, else None.

    AWS counts them in vCPUs or MiB with `DesiredCapacityType` (attribute-based instance
    selection), and in the weights' units when a mixed instances policy gives its
    instance types a `WeightedCapacity`.
    """
    kind = group.get("DesiredCapacityType")
    if kind not in (None, "", "units"):
        return f"{kind} (DesiredCapacityType)"
    mixed = group.get("MixedInstancesPolicy") or {}
    overrides = (mixed.get("LaunchTemplate") or {}).get("Overrides") or []
    weights = sorted({str(o["WeightedCapacity"]) for o in overrides if o.get("WeightedCapacity")})
    if any(w != "1" for w in weights):
        return f"weighted units (WeightedCapacity {', '.join(weights)})"
    return None


def suspended_processes(group: Mapping[str, Any]) -> set[str | None]:
    """The names of the group's suspended processes (`aws autoscaling suspend-processes`)."""
    return {p.get("ProcessName") for p in group.get("SuspendedProcesses", [])}


def _busy_reasons(
    group: AutoScalingGroupTypeDef,
    activities: Sequence[ActivityTypeDef],
    refreshes: Sequence[InstanceRefreshTypeDef],
) -> tuple[list[str], bool]:
    """Why the group must not be touched now (empty when it may be), and whether all of it
    is instances launching, which a further scale-up may overtake."""
    reasons = []
    launching = True
    if group.get("Status"):  # only set while the group is being deleted
        reasons.append(f"group status is {group.get('Status')!r}")
        launching = False
    suspended = suspended_processes(group)
    # An operator paused the group: a new DesiredCapacity would launch (or terminate)
    # nothing, yet count as done and start a cooldown. Launch suspended holds both ways
    # (no scale-in while nothing can be replaced); Terminate alone holds scale-in only.
    for process in ("Launch", "Terminate"):
        if process in suspended:
            reasons.append(
                f"the group's {process} process is suspended (resume it with "
                f"aws autoscaling resume-processes --scaling-processes {process})"
            )
    if "Launch" in suspended:
        launching = False
    for a in activities:
        if a["StatusCode"] not in FINISHED_ACTIVITY:
            what = a.get("Description") or a.get("Cause", "")
            progress = a.get("Progress")
            done = f", {progress}% done" if progress is not None else ""
            reasons.append(f"scaling activity {a['ActivityId']} is {a['StatusCode']}{done}: {what}")
            launching = launching and is_launch(a)
    for r in refreshes:
        if r.get("Status") in RUNNING_REFRESH:
            percent = r.get("PercentageComplete")
            done = f", {percent}% complete" if percent is not None else ""
            reasons.append(
                f"instance refresh {r.get('InstanceRefreshId', '?')} is {r.get('Status')}{done}"
            )
            launching = False
    return reasons, launching


def is_launch(activity: ActivityTypeDef) -> bool:
    """True for an activity that launches an instance ("Launching a new EC2 instance: ..."):
    more capacity on the way, which a further scale-up does not disturb. Terminations,
    detachments and anything unrecognised are not."""
    return activity.get("Description", "").lower().startswith(LAUNCH_MARK)


def _error(exc: ClientError) -> tuple[str, str]:
    """AWS's error code and message, with anything that looks like an access key masked."""
    error = exc.response.get("Error", {})
    return error.get("Code", "Unknown"), scrub(error.get("Message", ""))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        code, message = _error(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"HTTP {status} {code}: {message}"
    return scrub(f"{type(exc).__name__}: {exc}")


def _log_retry(action: str, where: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s on %s failed (attempt %d), retrying in %.2fs: %s",
            action,
            where,
            state.attempt_number,
            state.upcoming_sleep,
            _describe(exc) if exc else "?",
        )

    return before_sleep
