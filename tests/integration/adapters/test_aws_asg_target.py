"""The ASG target against a real moto server, with AWS's failure modes injected by a proxy.

moto holds the groups; `aws_proxy` stands in front of it for what moto cannot do (scaling
activities, instance refreshes, throttling, 5xx, access denied). Every scaler here is
built the production way, from the environment, so `AWS_ENDPOINT_URL` picks the server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.adapters.deadline import monotonic
from autoscaler.adapters.targets import aws_calls
from autoscaler.adapters.targets.aws_asg import REFRESH_CHECK, AsgScaler
from autoscaler.core.model import AsgTarget
from autoscaler.errors import (
    TargetBusy,
    TargetDeadline,
    TargetError,
    TargetForbidden,
    TargetNotFound,
    TargetUnavailable,
)
from tests.support.aws import (
    DEAD_ENDPOINT,
    REGION,
    ROLE_ARN,
    AwsProxy,
    MotoServer,
    assume_a_role,
)
from tests.support.net import slow_lookups, wait_until

pytestmark = pytest.mark.integration

DEADLINE = 3.0
ASSUME_DENIED = (
    "User: arn:aws:iam::123456789012:user/base is not authorized to perform: "
    f"sts:AssumeRole on resource: {ROLE_ARN}"
)
ScalerFactory = Callable[[str], AsgScaler]


@pytest.fixture
def direct(moto_server: MotoServer) -> ScalerFactory:
    """Scalers talking straight to moto (the session's AWS_ENDPOINT_URL)."""
    return lambda name: AsgScaler(AsgTarget(asg=name), deadline=DEADLINE)


@pytest.fixture
def via_proxy(aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch) -> ScalerFactory:
    """Scalers whose requests pass through the fault-injecting proxy."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    return lambda name: AsgScaler(AsgTarget(asg=name), deadline=DEADLINE)


def scale(scaler: AsgScaler, count: int) -> None:
    scaler.scale(count, reason="test", meta={"policy": "test"})


# --- reading and scaling through moto -----------------------------------------------------


def test_status_reads_desired_capacity_and_bounds_of_the_group(
    make_asg: Callable[..., str], direct: ScalerFactory
) -> None:
    name = make_asg(desired=3, min_size=2, max_size=7)

    status = direct(name).status()

    assert (status.count, status.min_size, status.max_size) == (3, 2, 7)
    assert status.ready
    assert status.not_ready_reason is None
    assert status.last_scaled_at is None


def test_scale_sets_desired_capacity_read_back_from_moto(
    asg: str, direct: ScalerFactory, desired_capacity: Callable[[str], int]
) -> None:
    scaler = direct(asg)

    scale(scaler, 5)

    assert desired_capacity(asg) == 5
    assert scaler.status().count == 5


def test_a_count_changed_by_hand_since_the_decision_is_not_overwritten(
    make_asg: Callable[..., str],
    direct: ScalerFactory,
    moto_server: MotoServer,
    desired_capacity: Callable[[str], int],
) -> None:
    name = make_asg(desired=2)
    scaler = direct(name)
    decided_on = scaler.status().count
    # an operator raises the group to 9 between our read and our write
    moto_server.client().set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=9)

    with pytest.raises(TargetBusy, match="changed from 2 to 9"):
        scaler.scale(4, reason="test", meta={}, expected=decided_on)

    assert desired_capacity(name) == 9  # our "up" to 4 would have been a scale-in
    scaler.scale(10, reason="test", meta={}, expected=9)  # decided on the new count: goes
    assert desired_capacity(name) == 10


def _meanwhile(
    aws_proxy: AwsProxy, moto_server: MotoServer, scaler: AsgScaler, name: str, by_hand: int
) -> Callable[[], None]:
    """Scale `name` from 2 to 4 while its first SetDesiredCapacity is throttled (answered
    after 0.5 s); in that time DesiredCapacity is set to `by_hand`. The call's outcome: the
    call has ended by then (leaving the pool waits for it; the scaler's deadline bounds it)."""
    # The hand's client is made first: building a boto3 client inside the 0.5 s could
    # take most of it on a loaded machine, and a change landing after the retry's re-read
    # is not the race this arranges.
    by_hand_client = moto_server.client()
    aws_proxy.fail_next("SetDesiredCapacity", 400, "Throttling", "Rate exceeded", delay=0.5)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(scaler.scale, 4, reason="up", meta={}, expected=2)
        wait_until(lambda: aws_proxy.count("SetDesiredCapacity") == 1, timeout=5.0)
        by_hand_client.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=by_hand)
        return call.result


def test_a_count_changed_by_hand_while_the_scale_is_retried_is_not_overwritten(
    asg: str,
    via_proxy: ScalerFactory,
    aws_proxy: AwsProxy,
    moto_server: MotoServer,
    desired_capacity: Callable[[str], int],
) -> None:
    # Checked once, before the first attempt, the count was overwritten by the retry.
    outcome = _meanwhile(aws_proxy, moto_server, via_proxy(asg), asg, by_hand=9)

    with pytest.raises(TargetBusy, match="changed from 2 to 9"):
        outcome()

    assert desired_capacity(asg) == 9  # our "up" to 4 would have been a scale-in
    assert aws_proxy.count("SetDesiredCapacity") == 1


def test_a_retried_scale_that_finds_its_own_count_already_set_is_done(
    asg: str,
    via_proxy: ScalerFactory,
    aws_proxy: AwsProxy,
    moto_server: MotoServer,
    desired_capacity: Callable[[str], int],
) -> None:
    # The group at the count being set is what an earlier attempt that landed leaves (its
    # answer lost): not someone else's move, and nothing to send again.
    outcome = _meanwhile(aws_proxy, moto_server, via_proxy(asg), asg, by_hand=4)

    outcome()

    assert desired_capacity(asg) == 4
    assert aws_proxy.count("SetDesiredCapacity") == 1


def test_missing_group_raises_not_found_naming_group_and_region(
    moto_server: MotoServer, direct: ScalerFactory
) -> None:
    with pytest.raises(TargetNotFound, match=r"'no-such-asg' not found in region eu-west-3"):
        direct("no-such-asg").status()
    with pytest.raises(TargetNotFound):
        scale(direct("no-such-asg"), 3)


def test_scale_outside_min_and_max_is_refused_and_leaves_the_group_alone(
    make_asg: Callable[..., str], via_proxy: ScalerFactory, aws_proxy: AwsProxy
) -> None:
    name = make_asg(desired=2, min_size=1, max_size=4)

    with pytest.raises(TargetError, match=r"outside its MinSize..MaxSize 1..4"):
        scale(via_proxy(name), 5)

    assert "SetDesiredCapacity" not in aws_proxy.requests


def test_region_comes_from_the_target_before_the_environment(
    asg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    with pytest.raises(TargetError, match=r"no AWS region: set target.region or AWS_REGION"):
        AsgScaler(AsgTarget(asg=asg))
    assert AsgScaler(AsgTarget(asg=asg, region="eu-west-3")).status().count == 2
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert AsgScaler(AsgTarget(asg=asg)).status().count == 2


def test_aws_endpoint_url_from_the_environment_is_honoured(
    asg: str, aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)

    AsgScaler(AsgTarget(asg=asg)).status()

    assert aws_proxy.requests == [
        "DescribeAutoScalingGroups",
        "DescribeScalingActivities",
        "DescribeInstanceRefreshes",
    ]


def test_targets_of_one_region_and_configuration_share_one_client(
    make_asg: Callable[..., str], aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = make_asg(), make_asg()
    a, b = AsgScaler(AsgTarget(asg=first)), AsgScaler(AsgTarget(asg=second))
    elsewhere = AsgScaler(AsgTarget(asg=first, region="us-east-1"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    proxied = AsgScaler(AsgTarget(asg=first))

    assert a._client is b._client
    assert elsewhere._client is not a._client
    assert proxied._client is not a._client  # another AWS configuration, another client
    assert (a.status().count, b.status().count, proxied.status().count) == (2, 2, 2)
    assert aws_proxy.requests.count("DescribeAutoScalingGroups") == 1


def test_groups_read_at_once_each_get_their_own_count(
    make_asg: Callable[..., str], aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [make_asg(desired=count) for count in range(1, 9)]
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    scalers = [AsgScaler(AsgTarget(asg=name), deadline=DEADLINE) for name in names]

    with ThreadPoolExecutor(len(scalers)) as pool:
        counts = list(pool.map(lambda scaler: scaler.status().count, scalers))

    assert counts == list(range(1, 9))
    described = [p for action, p in aws_proxy.calls if action == "DescribeAutoScalingGroups"]
    asked = [v for p in described for k, v in p.items() if k.startswith("AutoScalingGroupNames.")]
    assert set(asked) == set(names)
    # The first call carries every group known (riding along), later ones the readers that
    # asked while it was in flight: never one call per group.
    assert len(described) <= 2


def test_a_proxy_quoting_request_headers_back_never_shows_the_credentials(
    asg: str, aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id, secret_key = "AKIAEXAMPLE0SECRET42", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYsecret42"
    session_token = "FwoGZXIvYXdzEXAMPLEsessionTOKEN0123456789abcdef"
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)
    aws_proxy.fail_next("DescribeAutoScalingGroups", 400, "ValidationError", "bad", echo=True)

    with pytest.raises(TargetError, match="rejected by AWS: bad") as caught:
        AsgScaler(AsgTarget(asg=asg), deadline=DEADLINE).status()

    shown = str(caught.value)
    assert "X-Amz-Security-Token" in shown  # the echo is there, its values are not
    assert not [s for s in (key_id, secret_key, session_token) if s in shown], shown


def test_scale_ignores_the_groups_own_cooldown(
    asg: str, via_proxy: ScalerFactory, aws_proxy: AwsProxy
) -> None:
    scale(via_proxy(asg), 4)

    [params] = [p for action, p in aws_proxy.calls if action == "SetDesiredCapacity"]
    assert params["HonorCooldown"] == "false"
    assert params["DesiredCapacity"] == "4"


# --- what moto cannot do: activities and refreshes ----------------------------------------


def test_scaling_activity_in_progress_makes_the_group_not_ready_naming_it(
    asg: str, via_proxy: ScalerFactory, aws_proxy: AwsProxy
) -> None:
    aws_proxy.set_activities(
        [
            {
                "ActivityId": "act-123",
                "StatusCode": "InProgress",
                "Progress": 30,
                "Description": "Launching a new EC2 instance: i-0abc",
            },
            {"ActivityId": "act-old", "StatusCode": "Successful"},
        ],
        group=asg,
    )

    status = via_proxy(asg).status()

    assert not status.ready
    assert status.not_ready_reason is not None
    assert "act-123" in status.not_ready_reason
    assert "InProgress" in status.not_ready_reason
    assert "act-old" not in status.not_ready_reason
    assert status.count == 2


def test_instances_launching_allow_a_further_scale_up_only(
    asg: str, via_proxy: ScalerFactory, aws_proxy: AwsProxy
) -> None:
    aws_proxy.set_activities(
        [
            {"StatusCode": "InProgress", "Description": "Launching a new EC2 instance: i-01"},
            {"StatusCode": "PreInService", "Description": "Launching a new EC2 instance: i-02"},
        ],
        group=asg,
    )

    status = via_proxy(asg).status()

    assert not status.ready
    assert status.scale_up_allowed


@pytest.mark.parametrize(
    ("activities", "refreshes"),
    [
        pytest.param(
            [{"StatusCode": "InProgress", "Description": "Terminating EC2 instance: i-01"}],
            [],
            id="terminating",
        ),
        pytest.param(
            [
                {"StatusCode": "InProgress", "Description": "Launching a new EC2 instance: i-1"},
                {"StatusCode": "InProgress", "Description": "Terminating EC2 instance: i-02"},
            ],
            [],
            id="launching-and-terminating",
        ),
        pytest.param(
            [{"StatusCode": "InProgress", "Description": "Launching a new EC2 instance: i-1"}],
            [{"InstanceRefreshId": "ir-1", "Status": "InProgress"}],
            id="launching-during-an-instance-refresh",
        ),
    ],
)
def test_anything_but_launches_in_progress_allows_no_scaling_at_all(
    asg: str,
    via_proxy: ScalerFactory,
    aws_proxy: AwsProxy,
    activities: list[dict[str, str]],
    refreshes: list[dict[str, str]],
) -> None:
    aws_proxy.set_activities(activities, group=asg)
    aws_proxy.set_instance_refreshes(refreshes, group=asg)

    status = via_proxy(asg).status()

    assert not status.ready
    assert not status.scale_up_allowed


def test_instance_refresh_in_progress_makes_the_group_not_ready(
    asg: str, via_proxy: ScalerFactory, aws_proxy: AwsProxy
) -> None:
    aws_proxy.set_instance_refreshes(
        [{"InstanceRefreshId": "ir-42", "Status": "InProgress", "PercentageComplete": 40}],
        group=asg,
    )

    status = via_proxy(asg).status()

    assert not status.ready
    assert status.not_ready_reason == "instance refresh ir-42 is InProgress, 40% complete"


def test_finished_activities_and_refreshes_leave_the_group_ready(
    asg: str, via_proxy: ScalerFactory, aws_proxy: AwsProxy
) -> None:
    aws_proxy.set_activities(
        [{"StatusCode": s} for s in ("Successful", "Failed", "Cancelled")], group=asg
    )
    aws_proxy.set_instance_refreshes(
        [{"Status": s} for s in ("Successful", "Failed", "Cancelled", "RollbackSuccessful")],
        group=asg,
    )

    assert via_proxy(asg).status().ready


def test_manual_desired_capacity_change_sets_last_scaled_at(
    asg: str, moto_server: MotoServer, via_proxy: ScalerFactory, aws_proxy: AwsProxy
) -> None:
    moto_server.client().set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=4)
    # Within the hour a first read looks back (`aws_activity.LOOKBACK`).
    changed = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=250000)
    aws_proxy.set_activities(
        [
            {  # newest: a health replacement, which is no desired-capacity change
                "StartTime": changed + timedelta(minutes=5),
                "Cause": "At 2026-03-01T12:05:05Z an instance was started in response to a "
                "difference between desired and actual capacity, increasing the capacity "
                "from 3 to 4.",
            },
            {
                "StartTime": changed,
                "Cause": "At 2026-03-01T12:00:03Z a user request explicitly set group "
                "desired capacity changing the desired capacity from 2 to 4.  At "
                "2026-03-01T12:00:05Z an instance was started in response to a difference "
                "between desired and actual capacity, increasing the capacity from 2 to 4.",
            },
            {
                "StartTime": changed - timedelta(days=1),
                "Cause": "At 2026-02-28T12:00:00Z a monitor alarm triggered policy up "
                "changing the desired capacity from 1 to 2.",
            },
        ],
        group=asg,
    )

    status = via_proxy(asg).status()

    assert status.count == 4
    assert status.last_scaled_at == changed
    assert status.last_scaled_at.tzinfo is not None


# --- AWS calls per status: one listing of activities, refreshes read when they may run ----


def test_groups_read_together_share_one_activity_listing_each_seeing_its_own(
    make_asg: Callable[..., str], aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [make_asg() for _ in range(12)]
    busy, changed = names[3], names[7]
    at = (datetime.now(UTC) - timedelta(minutes=4)).replace(microsecond=0)
    aws_proxy.set_activities(
        [
            {"StatusCode": "InProgress", "Description": "Terminating EC2 instance: i-9"},
            {
                "AutoScalingGroupName": changed,
                "StartTime": at,
                "Cause": "a user request changing the desired capacity from 2 to 3",
            },
        ],
        group=busy,
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    scalers = [AsgScaler(AsgTarget(asg=name), deadline=DEADLINE) for name in names]

    with ThreadPoolExecutor(len(scalers)) as pool:
        statuses = dict(zip(names, pool.map(lambda scaler: scaler.status(), scalers), strict=True))

    assert aws_proxy.count("DescribeScalingActivities") == 1
    (listing,) = [p for a, p in aws_proxy.calls if a == "DescribeScalingActivities"]
    assert "AutoScalingGroupName" not in listing  # the whole region's, for all twelve
    assert [n for n, s in statuses.items() if not s.ready] == [busy]
    assert "Terminating EC2 instance: i-9" in (statuses[busy].not_ready_reason or "")
    assert [n for n, s in statuses.items() if s.last_scaled_at] == [changed]
    assert statuses[changed].last_scaled_at == at


def test_every_request_sent_to_aws_is_counted_by_region_and_action(
    make_asg: Callable[..., str], aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `autoscaler_aws_requests_total` shows: each request that left, retries too."""
    names = [make_asg() for _ in range(3)]
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    aws_proxy.fail_next("DescribeInstanceRefreshes", 503, "ServiceUnavailable", times=1)
    before = {(r, a): n for r, a, n in aws_calls.counts()}

    for name in names:
        AsgScaler(AsgTarget(asg=name), deadline=DEADLINE).status()
    scale(AsgScaler(AsgTarget(asg=names[0]), deadline=DEADLINE), 3)

    after = {(r, a): n for r, a, n in aws_calls.counts()}
    sent = {a: n - before.get((r, a), 0) for (r, a), n in after.items() if r == REGION}
    actions = set(aws_proxy.requests)
    assert {a: sent.get(a, 0) for a in actions} == {a: aws_proxy.count(a) for a in actions}
    assert sent["DescribeInstanceRefreshes"] == 4  # three groups, one of them retried


def test_instance_refreshes_are_read_again_only_when_one_may_have_started(
    asg: str,
    moto_server: MotoServer,
    via_proxy: ScalerFactory,
    aws_proxy: AwsProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scaler = via_proxy(asg)
    now = [1000.0]
    monkeypatch.setattr("autoscaler.adapters.targets.aws_asg.monotonic", lambda: now[0])

    def reads() -> int:
        return aws_proxy.count("DescribeInstanceRefreshes")

    scaler.status()
    now[0] += 30
    scaler.status()
    assert reads() == 1  # nothing changed, and it is younger than REFRESH_CHECK

    now[0] += REFRESH_CHECK
    scaler.status()
    assert reads() == 2  # too old: a refresh may have been started meanwhile

    moto_server.client().set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=3)
    scaler.status()
    assert reads() == 3  # the group changed

    aws_proxy.set_instance_refreshes([{"InstanceRefreshId": "ir-7"}], group=asg)
    scaler.status()
    assert reads() == 3  # unchanged and young: the refresh started meanwhile is not seen yet
    now[0] += REFRESH_CHECK
    assert "instance refresh ir-7" in (scaler.status().not_ready_reason or "")
    assert "instance refresh ir-7" in (scaler.status().not_ready_reason or "")
    assert reads() == 5  # while one runs, read on every status, to see it end at once

    aws_proxy.set_instance_refreshes(
        [{"InstanceRefreshId": "ir-7", "Status": "Successful"}], group=asg
    )
    assert scaler.status().ready
    assert reads() == 6


# --- what moto cannot do: throttling, 5xx, refusals ---------------------------------------


def test_throttled_scale_is_retried_until_it_succeeds(
    asg: str,
    via_proxy: ScalerFactory,
    aws_proxy: AwsProxy,
    desired_capacity: Callable[[str], int],
) -> None:
    aws_proxy.fail_next("SetDesiredCapacity", 400, "Throttling", "Rate exceeded", times=2)

    scale(via_proxy(asg), 6)

    assert desired_capacity(asg) == 6
    assert aws_proxy.count("SetDesiredCapacity") == 3


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_three_times_then_success_is_retried(
    asg: str, via_proxy: ScalerFactory, aws_proxy: AwsProxy, status: int
) -> None:
    aws_proxy.fail_next("DescribeAutoScalingGroups", status, "InternalFailure", "oops", times=3)

    assert via_proxy(asg).status().count == 2
    assert aws_proxy.count("DescribeAutoScalingGroups") == 4


def test_persistent_server_errors_raise_unavailable_within_the_deadline(
    asg: str, via_proxy: ScalerFactory, aws_proxy: AwsProxy
) -> None:
    aws_proxy.fail_next("SetDesiredCapacity", 503, "ServiceUnavailable", "down", times=10_000)
    scaler = via_proxy(asg)
    started = time.monotonic()

    with pytest.raises(TargetUnavailable, match=r"SetDesiredCapacity .* kept failing") as info:
        scale(scaler, 3)

    assert time.monotonic() - started < DEADLINE + 1.0
    assert "ServiceUnavailable" in str(info.value)
    assert aws_proxy.count("SetDesiredCapacity") >= 3


@pytest.mark.parametrize(
    ("action", "call"),
    [
        ("DescribeAutoScalingGroups", lambda s: s.status()),
        ("DescribeScalingActivities", lambda s: s.status()),
        ("DescribeInstanceRefreshes", lambda s: s.status()),
        ("SetDesiredCapacity", lambda s: scale(s, 3)),
    ],
)
def test_access_denied_names_the_iam_action_and_is_not_retried(
    asg: str,
    via_proxy: ScalerFactory,
    aws_proxy: AwsProxy,
    action: str,
    call: Callable[[AsgScaler], object],
) -> None:
    aws_proxy.fail_next(
        action,
        403,
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/ci (key AKIAIOSFODNN7EXAMPLE) is not "
        f"authorized to perform: autoscaling:{action}",
    )

    with pytest.raises(
        TargetForbidden, match=rf"grant the IAM action autoscaling:{action}"
    ) as info:
        call(via_proxy(asg))

    assert aws_proxy.count(action) == 1
    assert "AKIAIOSFODNN7EXAMPLE" not in str(info.value)


def test_validation_error_is_passed_through_with_the_aws_message(
    asg: str, via_proxy: ScalerFactory, aws_proxy: AwsProxy
) -> None:
    message = "New SetDesiredCapacity value 3 is above max value 2 for the AutoScalingGroup."
    aws_proxy.fail_next("SetDesiredCapacity", 400, "ValidationError", message)

    with pytest.raises(TargetError, match=r"rejected by AWS: New SetDesiredCapacity") as info:
        scale(via_proxy(asg), 3)

    assert type(info.value) is TargetError
    assert aws_proxy.count("SetDesiredCapacity") == 1


@pytest.mark.parametrize(
    ("status", "code"), [(400, "ScalingActivityInProgress"), (500, "ResourceContention")]
)
def test_group_busy_with_another_change_raises_busy_without_retry(
    asg: str, via_proxy: ScalerFactory, aws_proxy: AwsProxy, status: int, code: str
) -> None:
    aws_proxy.fail_next("SetDesiredCapacity", status, code, "You already have a pending update")

    with pytest.raises(TargetBusy, match=code):
        scale(via_proxy(asg), 3)

    assert aws_proxy.count("SetDesiredCapacity") == 1


def test_a_scale_request_whose_connection_opens_after_the_lease_deadline_is_not_sent(
    asg: str,
    aws_proxy: AwsProxy,
    monkeypatch: pytest.MonkeyPatch,
    desired_capacity: Callable[[str], int],
) -> None:
    # The proxy closes every connection after its answer, so SetDesiredCapacity opens one
    # of its own, after the caller's deadline was last checked (before-send): its host
    # lookup outlasts the deadline (no connect or read timeout bounds a lookup). Before,
    # the request was then written all the same, a second after the lease had ended.
    host = "autoscaling.slow-dns.test"
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url.replace("127.0.0.1", host))
    lookups = slow_lookups(monkeypatch, host, delay=1.5, fast=1)  # the group read's is fast
    scaler = AsgScaler(AsgTarget(asg=asg), deadline=DEADLINE)

    with pytest.raises(TargetDeadline, match=r"SetDesiredCapacity .* was not sent") as info:
        scaler.scale(5, reason="up", meta={}, expected=2, deadline=monotonic() + 0.8)

    assert lookups.count == 2  # the group read's connection, then the scale request's
    assert not info.value.maybe_applied
    assert aws_proxy.count("DescribeAutoScalingGroups") == 1
    assert aws_proxy.count("SetDesiredCapacity") == 0
    assert desired_capacity(asg) == 2


def test_unreachable_endpoint_raises_unavailable_within_the_deadline(
    asg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD_ENDPOINT)
    scaler = AsgScaler(AsgTarget(asg=asg), deadline=1.0)
    started = time.monotonic()

    with pytest.raises(TargetUnavailable, match=r"DescribeAutoScalingGroups .* kept failing"):
        scaler.status()

    assert time.monotonic() - started < 2.0


def test_tests_only_ever_see_fake_aws_settings(moto_server: MotoServer) -> None:
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}

    assert aws == moto_server.env
    assert moto_server.env["AWS_ACCESS_KEY_ID"] == "testing"
    assert moto_server.env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")


def test_a_suspended_launch_process_holds_both_ways_and_says_how_to_resume(
    asg: str, direct: ScalerFactory, moto_server: MotoServer
) -> None:
    client = moto_server.client()
    client.suspend_processes(AutoScalingGroupName=asg, ScalingProcesses=["Launch", "AZRebalance"])
    status = direct(asg).status()
    assert not status.ready and not status.scale_up_allowed
    assert status.not_ready_reason == (
        "the group's Launch process is suspended (resume it with aws autoscaling "
        "resume-processes --scaling-processes Launch)"
    )
    client.resume_processes(AutoScalingGroupName=asg, ScalingProcesses=["Launch"])
    assert direct(asg).status().ready  # AZRebalance alone does not stop scaling


def test_a_suspended_terminate_process_holds_scale_in_only(
    asg: str, direct: ScalerFactory, moto_server: MotoServer
) -> None:
    client = moto_server.client()
    client.suspend_processes(AutoScalingGroupName=asg, ScalingProcesses=["Terminate"])
    status = direct(asg).status()
    assert not status.ready and status.scale_up_allowed
    assert "Terminate process is suspended" in (status.not_ready_reason or "")


@pytest.mark.parametrize(
    ("process", "to", "held"),
    [
        pytest.param("Launch", 4, True, id="launch-up"),
        pytest.param("Launch", 1, True, id="launch-down"),
        pytest.param("Terminate", 1, True, id="terminate-down"),
        pytest.param("Terminate", 4, False, id="terminate-up-goes"),
    ],
)
def test_a_process_suspended_after_the_status_was_read_refuses_the_scale_call(
    asg: str, direct: ScalerFactory, moto_server: MotoServer, process: str, to: int, held: bool
) -> None:
    # SetDesiredCapacity takes a count while Launch (or Terminate) is suspended, does
    # nothing, and the controller would start a cooldown for it.
    scaler = direct(asg)
    count = scaler.status().count
    client = moto_server.client()
    client.suspend_processes(AutoScalingGroupName=asg, ScalingProcesses=[process])
    if held:
        with pytest.raises(TargetBusy, match=f"its {process} process was suspended"):
            scaler.scale(to, reason="test", meta={}, expected=count)
        assert moto_server.desired_capacity(asg) == count
    else:
        scaler.scale(to, reason="test", meta={}, expected=count)
        assert moto_server.desired_capacity(asg) == to


def test_a_group_sized_in_weighted_units_is_neither_read_as_instances_nor_scaled(
    asg: str, direct: ScalerFactory, moto_server: MotoServer
) -> None:
    # With WeightedCapacity 4, DesiredCapacity 8 is two instances: a policy's "20" would
    # be set as 20 units, five instances (a scale-in nobody decided).
    scaler = direct(asg)
    count = scaler.status().count
    moto_server.client().update_auto_scaling_group(
        AutoScalingGroupName=asg,
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateName": f"lt-{asg}"},
                "Overrides": [{"InstanceType": "t3.micro", "WeightedCapacity": "4"}],
            }
        },
    )
    with pytest.raises(TargetError, match=r"weighted units \(WeightedCapacity 4\), not in inst"):
        scaler.status()
    with pytest.raises(TargetError, match="weighted units"):
        scaler.scale(count + 2, reason="test", meta={}, expected=count)
    assert moto_server.desired_capacity(asg) == count


def test_instances_above_the_desired_capacity_hold_scale_in_but_not_scale_up(
    make_asg: Callable[..., str], direct: ScalerFactory, moto_server: MotoServer
) -> None:
    # A scale-in of a group whose instances are all protected lowers DesiredCapacity and
    # terminates nothing (AWS, and moto): 4 instances serve while the count reads 2. A
    # policy deciding on 2 would scale in again, and again, and once the protection is
    # removed the group falls to whatever the count has sunk to.
    asg = make_asg(desired=4)
    client = moto_server.client()
    instances = client.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])[
        "AutoScalingGroups"
    ][0]["Instances"]
    client.set_instance_protection(
        AutoScalingGroupName=asg,
        InstanceIds=[i["InstanceId"] for i in instances],
        ProtectedFromScaleIn=True,
    )
    scaler = direct(asg)
    scaler.scale(2, reason="test", meta={}, expected=4)

    status = scaler.status()

    assert status.count == 2
    assert not status.ready
    assert status.scale_up_allowed  # more capacity never makes the count more wrong
    assert status.not_ready_reason == (
        "the group runs 4 instances, more than its DesiredCapacity 2 (4 of them protected "
        "from scale-in: aws autoscaling set-instance-protection --no-protected-from-scale-in "
        "lets them go): a scale-in waits until it runs no more than that"
    )
    client.set_instance_protection(
        AutoScalingGroupName=asg,
        InstanceIds=[i["InstanceId"] for i in instances],
        ProtectedFromScaleIn=False,
    )
    client.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=2)  # moto: terminate
    assert direct(asg).status().ready


# --- what moto cannot show: amended group descriptions ------------------------------------


@pytest.mark.parametrize(
    ("fields", "instances", "units"),
    [
        pytest.param(
            {}, {"WeightedCapacity": "4"}, "instances of WeightedCapacity 4", id="kept-weight"
        ),
        pytest.param({"DesiredCapacityType": "vcpu"}, {}, "vcpu", id="vcpu"),
    ],
)
def test_a_group_counting_units_is_neither_read_nor_scaled(
    asg: str,
    via_proxy: ScalerFactory,
    aws_proxy: AwsProxy,
    moto_server: MotoServer,
    fields: dict[str, str],
    instances: dict[str, str],
    units: str,
) -> None:
    # Instances launched with a weight keep it once their type's weight is removed from
    # the mixed instances policy (or the policy with it): DesiredCapacity 8 is then two
    # instances of weight 4, and a policy's "4" would be a scale-in to one.
    scaler = via_proxy(asg)
    count = scaler.status().count
    aws_proxy.amend_group(asg, {"DesiredCapacity": 8, **fields}, instances=instances)

    with pytest.raises(TargetError, match=units):
        scaler.status()
    with pytest.raises(TargetError, match=units):
        scaler.scale(4, reason="test", meta={}, expected=8)
    assert moto_server.desired_capacity(asg) == count


def test_a_group_being_deleted_is_not_ready_and_a_deletion_since_the_status_refuses_the_scale(
    asg: str, via_proxy: ScalerFactory, aws_proxy: AwsProxy, moto_server: MotoServer
) -> None:
    scaler = via_proxy(asg)
    count = scaler.status().count
    aws_proxy.amend_group(asg, {"Status": "Delete in progress"})

    status = scaler.status()
    assert not status.ready and not status.scale_up_allowed
    assert status.not_ready_reason == "group status is 'Delete in progress'"
    with pytest.raises(TargetBusy, match=r"is being deleted \(status 'Delete in progress'\)"):
        scaler.scale(count + 1, reason="test", meta={}, expected=count)
    assert moto_server.desired_capacity(asg) == count


def test_a_role_that_cannot_be_assumed_is_said_to_be_the_credentials_not_an_autoscaling_grant(
    asg: str,
    aws_proxy: AwsProxy,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # A profile that assumes a role: the credentials come from sts:AssumeRole on first use,
    # and STS's AccessDenied comes out of the Auto Scaling call. Granting
    # autoscaling:DescribeAutoScalingGroups would not help; the role's trust policy would.
    assume_a_role(monkeypatch, tmp_path, aws_proxy.url)
    aws_proxy.fail_next("AssumeRole", 403, "AccessDenied", ASSUME_DENIED, times=10)

    with pytest.raises(TargetForbidden) as raised:
        AsgScaler(AsgTarget(asg=asg), deadline=DEADLINE).status()

    message = str(raised.value)
    assert "grant the IAM action autoscaling:" not in message
    assert "the AWS credentials could not be obtained: AssumeRole was denied" in message
    assert f"sts:AssumeRole on resource: {ROLE_ARN}" in message
    assert aws_proxy.count("DescribeAutoScalingGroups") == 0  # never sent unsigned


@pytest.mark.parametrize(
    ("code", "message", "said", "sent"),
    [
        pytest.param(
            "ExpiredToken",
            "The security token included in the request is expired",
            r"read again \d+s ago \(and they were unchanged\); .* restart it once they are renewed",
            1,
            id="expired",
        ),
        pytest.param(
            "SignatureDoesNotMatch",
            "Signature expired: 20261204T100000Z is now earlier than 20261204T110000Z",
            "this host's clock is off",
            1,
            id="signature-expired",
        ),
        pytest.param("RequestExpired", "Request has expired.", "host's clock", 1, id="request"),
    ],
)
def test_credentials_past_their_end_say_what_renews_them(
    asg: str,
    via_proxy: ScalerFactory,
    aws_proxy: AwsProxy,
    code: str,
    message: str,
    said: str,
    sent: int,
) -> None:
    # Credentials of the environment are read once: renewing them changes nothing until a
    # restart, which the operator must be told. Expired ones are read again first (a
    # credentials file may hold new ones); the same ones found again, the call is not sent
    # once more. A clock that is off is not the credentials' fault.
    aws_proxy.fail_next("DescribeAutoScalingGroups", 403, code, message, times=2)
    with pytest.raises(TargetForbidden, match=said):
        via_proxy(asg).status()
    assert aws_proxy.count("DescribeAutoScalingGroups") == sent
