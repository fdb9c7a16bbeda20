"""A key rotated in the shared credentials file, against a moto server that checks every
request's key and signature as AWS does (`moto_auth`).

botocore reads a credentials file once; the clients the ASG targets and AWS discovery
share were kept for the life of the service. When an operator's tooling rotated the key
(a new key written to the file, the old one deleted in IAM), every call failed with
`InvalidClientTokenId` until a restart, and every ASG policy held.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.adapters.discovery.aws import AsgDiscovery
from autoscaler.adapters.targets import TargetFactory, aws_calls, aws_client
from autoscaler.adapters.targets.aws_asg import AsgScaler
from autoscaler.core.model import AsgTarget
from autoscaler.errors import DiscoveryError, TargetForbidden, TargetUnavailable
from tests.support.aws import REGION, AwsProxy
from tests.support.moto_auth import Key, MotoAuthServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("moto-auth")]

TAGS = {"rotation": "yes"}
READ_AGAIN = "read them again"  # what the log says when a client is built again


@pytest.fixture(scope="module")
def auth_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoAuthServer]:
    server = MotoAuthServer(tmp_path_factory.mktemp("moto-auth"), log_name="moto.log")
    with server:
        server.enforce_auth()
        yield server


@pytest.fixture
def scaler_user(auth_moto: MotoAuthServer) -> str:
    """An IAM user allowed every action, as the service's would be; its name."""
    return auth_moto.new_user(f"scaler-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def credentials_file(
    auth_moto: MotoAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The AWS configuration of the service: its credentials from this file (not there
    yet), its endpoint the server that checks them."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "credentials"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", auth_moto.url)
    return path


def make_group(server: MotoAuthServer) -> str:
    """A group of desired capacity 2 carrying `TAGS`, made with the admin's key."""
    name = f"asg-{uuid.uuid4().hex[:10]}"
    ec2 = server.client("ec2")
    ec2.create_launch_template(
        LaunchTemplateName=f"lt-{name}",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    server.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"lt-{name}", "Version": "$Latest"},
        MinSize=1,
        MaxSize=10,
        DesiredCapacity=2,
        VPCZoneIdentifier=",".join(s["SubnetId"] for s in subnets["Subnets"]),
        Tags=[
            {"Key": k, "Value": v, "PropagateAtLaunch": False, "ResourceId": name}
            for k, v in TAGS.items()
        ],
    )
    return name


def rebuilt(caplog: pytest.LogCaptureFixture) -> int:
    return sum(READ_AGAIN in r.getMessage() for r in caplog.records)


def reading_with_a_new_key(
    auth_moto: MotoAuthServer, user: str, credentials_file: Path
) -> tuple[AsgScaler, Key]:
    """A target of a new group, read once with a new key of `user` written to the file."""
    key = auth_moto.new_key(user)
    key.credentials_file(credentials_file)
    scaler = AsgScaler(AsgTarget(asg=make_group(auth_moto)), deadline=3.0)
    assert scaler.status().count == 2
    return scaler, key


def test_the_server_refuses_a_deleted_key(auth_moto: MotoAuthServer, scaler_user: str) -> None:
    # What the tests below stand on: moto checks the key as AWS does.
    key = auth_moto.new_key(scaler_user)
    auth_moto.client("autoscaling", key).describe_auto_scaling_groups()
    auth_moto.client("iam").delete_access_key(UserName=scaler_user, AccessKeyId=key.id)
    with pytest.raises(Exception, match="InvalidClientTokenId"):
        auth_moto.client("autoscaling", key).describe_auto_scaling_groups()


def test_a_key_rotated_in_the_credentials_file_is_read_again_without_a_restart(
    auth_moto: MotoAuthServer,
    scaler_user: str,
    credentials_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = make_group(auth_moto)
    key_a = auth_moto.new_key(scaler_user)
    key_a.credentials_file(credentials_file)
    scaler = TargetFactory()(AsgTarget(asg=group))  # as the service builds its targets
    discovery = AsgDiscovery(REGION, deadline=5.0)  # another deadline: a client of its own
    assert scaler.status().count == 2
    assert group in [g.name for g in discovery.groups(TAGS)]

    # The rotation an operator's tooling makes: a new key, written to the file, and the
    # old one deleted.
    key_b = auth_moto.new_key(scaler_user)
    key_b.credentials_file(credentials_file)
    auth_moto.client("iam").delete_access_key(UserName=scaler_user, AccessKeyId=key_a.id)

    with caplog.at_level(logging.WARNING):
        assert scaler.status().count == 2
        scaler.scale(3, reason="test", meta={})
        assert group in [g.name for g in discovery.groups(TAGS)]
    assert rebuilt(caplog) == 2  # the target's client and discovery's, once each
    described = auth_moto.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[group]
    )
    assert described["AutoScalingGroups"][0]["DesiredCapacity"] == 3


def test_a_key_rejected_again_holds_and_says_it_was_read_again(
    auth_moto: MotoAuthServer,
    scaler_user: str,
    credentials_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scaler, key_a = reading_with_a_new_key(auth_moto, scaler_user, credentials_file)

    # The file now holds a key IAM never issued, and the old one is gone.
    Key("AKIA" + "X" * 16, "not-a-secret").credentials_file(credentials_file)
    auth_moto.client("iam").delete_access_key(UserName=scaler_user, AccessKeyId=key_a.id)

    with caplog.at_level(logging.WARNING):
        with pytest.raises(TargetForbidden) as first:
            scaler.status()
        # Within CREDENTIALS_REREAD: not read again, the client not built again.
        with pytest.raises(TargetForbidden) as second:
            scaler.status()
        with pytest.raises(DiscoveryError) as listing:
            AsgDiscovery(REGION, deadline=3.0).groups(TAGS)
    for raised in (first, second, listing):
        message = str(raised.value)
        assert "AWS rejected the credentials (InvalidClientTokenId" in message
        assert "the credentials were read again" in message
        assert "at most every 30 s" in message
    # Once: discovery's client (another region key) is built from the session read again
    # for the target, and its own rejection comes within CREDENTIALS_REREAD of that read.
    assert rebuilt(caplog) == 1


def test_a_rejected_key_read_again_unchanged_builds_nothing_and_sends_nothing_again(
    auth_moto: MotoAuthServer,
    scaler_user: str,
    credentials_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The key is deleted in IAM, and the file still holds it (nobody rotated it; or the
    # credentials come from the environment, which cannot change): reading the chain again
    # finds the same key, so no client is built again and the call is not sent once more.
    scaler, key_a = reading_with_a_new_key(auth_moto, scaler_user, credentials_file)
    auth_moto.client("iam").delete_access_key(UserName=scaler_user, AccessKeyId=key_a.id)

    with caplog.at_level(logging.WARNING), pytest.raises(TargetForbidden) as refused:
        scaler.status()
    assert rebuilt(caplog) == 0
    assert "the credentials were read again 0s ago (and they were unchanged)" in str(refused.value)


def rotating_before(client: Any, action: str, rotate: Callable[[], None]) -> None:
    """Have `rotate()` run once, as `client`'s next `action` is about to be sent: a
    rotation that lands between a scale's read of the group and its write."""
    done: list[bool] = []

    def hook(**_kwargs: Any) -> None:
        if not done:
            done.append(True)
            rotate()

    client.meta.events.register(f"before-call.autoscaling.{action}", hook)


def test_a_key_rotated_between_the_read_and_the_write_has_the_write_sent_once_more(
    auth_moto: MotoAuthServer,
    scaler_user: str,
    credentials_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The status and the scale's own read of the group go with the old key; the key is
    # rotated just before SetDesiredCapacity, which AWS refuses for its credentials (so it
    # changed nothing): it is sent once more, with the key read again, and lands.
    key_a = auth_moto.new_key(scaler_user)
    key_a.credentials_file(credentials_file)
    group = make_group(auth_moto)
    scaler = AsgScaler(AsgTarget(asg=group), deadline=3.0)
    assert scaler.status().count == 2
    key_b = auth_moto.new_key(scaler_user)

    def rotate() -> None:
        key_b.credentials_file(credentials_file)
        auth_moto.client("iam").delete_access_key(UserName=scaler_user, AccessKeyId=key_a.id)

    target_client = aws_client.shared(None, 3.0).client  # the one the target uses
    rotating_before(target_client, "SetDesiredCapacity", rotate)
    sets = sent("SetDesiredCapacity")

    with caplog.at_level(logging.WARNING):
        scaler.scale(3, reason="test", meta={}, expected=2)
    assert rebuilt(caplog) == 1
    assert sent("SetDesiredCapacity") == sets + 2  # refused, then sent once more
    assert (
        auth_moto.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
            "AutoScalingGroups"
        ][0]["DesiredCapacity"]
        == 3
    )


def sent(action: str) -> int:
    """The requests of `action` this process's clients sent so far (`aws_calls`)."""
    return sum(n for region, name, n in aws_calls.counts() if (region, name) == (REGION, action))


@pytest.fixture
def behind_the_proxy(aws_proxy: AwsProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The service's AWS configuration: its key from this file, its endpoint the proxy in
    front of the shared moto (which checks no key: the proxy refuses one when told)."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "credentials"
    Key("AKIDFIRST", "s").credentials_file(path)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    return path


def _a_write_lost_then_refused(
    aws_proxy: AwsProxy, asg: str, behind_the_proxy: Path, *, lands: bool
) -> AsgScaler:
    """A scaler of `asg` (at 2) whose next SetDesiredCapacity goes unanswered (after moto
    applied it when `lands`), whose retry is refused for its credentials, with a new key
    in the file meanwhile."""
    scaler = AsgScaler(AsgTarget(asg=asg), deadline=3.0)
    assert scaler.status().count == 2
    aws_proxy.drop_next("SetDesiredCapacity", lands=lands)
    aws_proxy.fail_next(
        "SetDesiredCapacity", 403, "InvalidClientTokenId", "The security token is invalid."
    )
    Key("AKIDSECOND", "s").credentials_file(behind_the_proxy)
    return scaler


@pytest.mark.parametrize("lands", [True, False], ids=["it landed", "it was lost"])
def test_a_blind_write_whose_answer_was_lost_is_not_sent_again_after_the_key_is_read_again(
    aws_proxy: AwsProxy,
    asg: str,
    behind_the_proxy: Path,
    desired_capacity: Callable[[str], int],
    lands: bool,
) -> None:
    # The first SetDesiredCapacity goes unanswered (a dropped connection: it may have
    # landed); the retry is refused for its credentials, and a new key is in the file.
    # Sending it once more, unchecked, with that key could write a change made already on
    # top of another scaler's or an operator's since: the scale fails saying it may have
    # been applied, and its cooldown is kept.
    scaler = _a_write_lost_then_refused(aws_proxy, asg, behind_the_proxy, lands=lands)

    with pytest.raises(TargetUnavailable) as raised:
        scaler.scale(3, reason="test", meta={})
    assert raised.value.maybe_applied
    assert "may have been applied" in str(raised.value)
    assert "InvalidClientTokenId" in str(raised.value)
    assert aws_proxy.count("SetDesiredCapacity") == 2
    assert desired_capacity(asg) == (3 if lands else 2)


@pytest.mark.parametrize("lands", [True, False], ids=["it landed", "it was lost"])
def test_a_checked_write_whose_answer_was_lost_reads_the_group_again_after_the_key_is_read_again(
    aws_proxy: AwsProxy,
    asg: str,
    behind_the_proxy: Path,
    desired_capacity: Callable[[str], int],
    lands: bool,
) -> None:
    # The same, with the count the scale expects: before each retry the group is read,
    # and shows whether the lost write landed (done: nothing sent again, the refusal never
    # reached) or not (the retry, refused for its credentials, is sent once more with the
    # new key after the group is read again with it: nobody moved the group meanwhile).
    scaler = _a_write_lost_then_refused(aws_proxy, asg, behind_the_proxy, lands=lands)

    scaler.scale(3, reason="test", meta={}, expected=2)
    assert desired_capacity(asg) == 3
    assert aws_proxy.count("SetDesiredCapacity") == (1 if lands else 3)  # landed: not sent again
