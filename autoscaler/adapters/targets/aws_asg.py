"""The EC2 Auto Scaling Group target: reads and sets an ASG's DesiredCapacity through boto3.

botocore's own retries are turned off so that one bounded, logged retry loop (tenacity)
decides what is worth retrying (throttling, 5xx, broken connections) and for how long;
everything else becomes one of our `TargetError`s at once, with a message that says what
to fix (the IAM action to grant, the AWS validation message): `aws_errors`.

The client every target of a region and AWS configuration shares, and how it is built, is
`aws_client`; what a status is made of (why a group must not be touched now), `aws_status`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError
from tenacity import (
    Retrying,
    retry_if_exception,
    wait_random_exponential,
)

from autoscaler.adapters import send_by
from autoscaler.adapters.deadline import Budget, after_unanswered, monotonic
from autoscaler.adapters.targets.aws_client import SharedClient, send_renewing, shared
from autoscaler.adapters.targets.aws_errors import describe, is_transient, log_retry, translate
from autoscaler.adapters.targets.aws_status import (
    RUNNING_REFRESH,
    Refreshes,
    busy_reasons,
    capacity_units,
    refresh_shape,
    suspended_processes,
)
from autoscaler.adapters.targets.moved import Landed, landed_or_moved, moved_since
from autoscaler.core.model import AsgTarget, TargetStatus
from autoscaler.errors import (
    TargetBusy,
    TargetDeadline,
    TargetError,
    TargetNotFound,
    TargetUnavailable,
)

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_autoscaling.type_defs import (
        AutoScalingGroupTypeDef,
        InstanceRefreshTypeDef,
    )

log = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds a group's instance refreshes found none running are trusted while its instances
# and desired capacity stay as they were (`AsgScaler._running_refreshes`).
REFRESH_CHECK = 300.0


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
        self._shared = (
            shared(ref.region, deadline) if client is None else SharedClient.given(client)
        )
        self._reads, self._feed = self._shared.reads, self._shared.feed
        self._refreshes: Refreshes | None = None  # the last read, while it may be kept
        self._refresh_reads = 0
        self._refresh_lock = threading.Lock()
        self._reads.know(ref.asg)  # so its group can ride along in other targets' reads
        self._region = self._client.meta.region_name

    @property
    def _client(self) -> AutoScalingClient:
        """The shared client of the moment (built again when AWS rejected its credentials)."""
        return self._shared.client

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
        reasons, launching = busy_reasons(group, recent.running, refreshes)
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
        shape = refresh_shape(group)
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
                self._refreshes = Refreshes(read_at=asked, shape=shape)
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
        Launch process suspended since (or Terminate, for a scale-in) and a deletion
        started since.
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
        if group.get("Status"):  # set only once its deletion started (since the status)
            raise TargetBusy(
                f"{self._where()} is being deleted (status {group.get('Status')!r}): not scaled"
            )
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
        raises when not (its errors end the call as they are). When AWS rejects the
        credentials, they are read again and the call is sent once more
        (`SharedClient.renew`, waiting for that reading within `until`), unless they were
        read again too recently, or it is a write an earlier attempt of which got no answer
        and no `again` checks (it may have landed: never sent again blind).
        """
        what = f"{action} on {where or self._where()}"
        sent = 0
        unanswered_once = False  # a write sent and not answered: it may have landed
        last: str | None = None  # how the last attempt failed: said if no retry may start

        def attempt() -> T:
            nonlocal sent, unanswered_once, last
            until.check(what, sent=sent, last=last)
            if sent and again is not None:
                again()
                until.check(what, sent=sent, last=last)
            sent += 1
            try:
                if until.caller is None or not write:
                    return fn()
                try:
                    with send_by.sending_by(until.caller):
                        return fn()
                except (TargetDeadline, HTTPClientError) as exc:
                    # Refused as it was about to go: by `bound_request`, or by a connection
                    # that opened too late (`send_by`, which botocore's error wraps).
                    if send_by.refusal(exc) is None:
                        raise
                    sent -= 1
                    raise until.refused(what, sent=sent, last=last) from None
            except (ClientError, BotoCoreError, ResponseParserError) as exc:
                last = describe(exc)
                if isinstance(exc, ReadTimeoutError | ConnectionClosedError):
                    unanswered_once = unanswered_once or write
                raise

        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(multiplier=0.1, max=min(2.0, self._deadline / 3)),
            stop=lambda state: until.stop(state.upcoming_sleep),
            before_sleep=log_retry(log, logging.WARNING, f"{action} on {where or self._where()}"),
            reraise=True,
        )
        try:
            try:
                # Not after an attempt of a write that got no answer (it may have landed),
                # unless `again` reads the group first to tell (`landed_or_moved`).
                return send_renewing(
                    self._shared,
                    lambda: retrying(attempt),
                    again=lambda: not unanswered_once or again is not None,
                    by=until.until,
                )
            except (ClientError, BotoCoreError, ResponseParserError) as exc:
                unanswered = write and isinstance(exc, ReadTimeoutError | ConnectionClosedError)
                if until.cut and is_transient(exc):
                    last = describe(exc)
                    raise until.over(what, sent=sent, last=last, unanswered=unanswered) from exc
                error = translate(
                    action,
                    exc,
                    sent,
                    where=where or self._where(),
                    deadline=self._deadline,
                    reread=self._shared.reread(exc),
                )
                if unanswered and isinstance(error, TargetUnavailable):
                    error.maybe_applied = True  # sent, never answered: it may have landed
                raise error from exc
        except TargetError as error:
            if unanswered_once:  # an earlier attempt may have landed, whatever came after
                raise after_unanswered(error, what) from error.__cause__
            raise
