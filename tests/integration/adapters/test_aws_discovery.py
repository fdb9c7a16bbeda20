"""AWS discovery against moto: the groups carrying the opt-in tags, each with all its tags."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autoscaler.adapters.discovery import aws as aws_discovery
from autoscaler.adapters.discovery.aws import AsgDiscovery
from autoscaler.errors import DiscoveryError
from tests.support.aws import REGION, ROLE_ARN, AwsProxy, MotoServer, assume_a_role

pytestmark = pytest.mark.integration

OPT_IN = {"autoscaler:enabled": "true"}


def test_groups_with_the_tags_are_found_with_all_their_tags(
    moto_server: MotoServer, make_asg: Callable[..., str]
) -> None:
    moto_server.reset()
    web = make_asg(tags={**OPT_IN, "autoscaler:max": "12", "team": "shop"})
    make_asg(tags={"autoscaler:enabled": "false"})
    make_asg()
    found = AsgDiscovery(REGION).groups(OPT_IN)
    assert [g.name for g in found] == [web]
    assert found[0].tags == {**OPT_IN, "autoscaler:max": "12", "team": "shop"}
    assert found[0].region == REGION


def test_every_page_is_read(
    moto_server: MotoServer, make_asg: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    moto_server.reset()
    monkeypatch.setattr(aws_discovery, "PAGE", 2)  # AWS pages by 100; 2 shows the same
    names = {make_asg(tags=OPT_IN) for _ in range(5)}
    found = AsgDiscovery(REGION).groups(OPT_IN)
    assert {g.name for g in found} == names


def test_a_refused_call_says_which_permission_to_grant(
    aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)  # a client of its own, via the proxy
    aws_proxy.fail_next("DescribeAutoScalingGroups", 403, "AccessDenied", "not allowed")
    with pytest.raises(DiscoveryError, match="autoscaling:DescribeAutoScalingGroups"):
        AsgDiscovery(REGION, deadline=2.5).groups(OPT_IN)


def test_an_answer_that_is_not_aws_is_a_discovery_error_not_a_crash(
    aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's ResponseParserError is no BotoCoreError: it went past the discovery's
    # handling, logged as an unexpected failure with a traceback at every poll.
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    page = b"<html><body>Proxy login required<br></body></html>"  # not XML either
    aws_proxy.fail_next("DescribeAutoScalingGroups", 200, "", body=page, times=10)  # retried
    with pytest.raises(DiscoveryError, match="DescribeAutoScalingGroups in region"):
        AsgDiscovery(REGION, deadline=2.5).groups(OPT_IN)


def test_a_role_that_cannot_be_assumed_is_said_to_be_the_credentials(
    aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assume_a_role(monkeypatch, tmp_path, aws_proxy.url)
    aws_proxy.fail_next("AssumeRole", 403, "AccessDenied", f"not for {ROLE_ARN}", times=10)
    with pytest.raises(DiscoveryError) as raised:
        AsgDiscovery(REGION, deadline=2.5).groups(OPT_IN)
    assert "the AWS credentials could not be obtained: AssumeRole was denied" in str(raised.value)
    assert "grant the IAM action" not in str(raised.value)


def test_expired_credentials_say_what_renews_them(
    aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    aws_proxy.fail_next("DescribeAutoScalingGroups", 403, "ExpiredToken", "token expired", times=2)
    # Read again (a credentials file may hold new ones): the same ones, so not sent again.
    unchanged = r"read again \d+s ago \(and they were unchanged\); .* restart it once they are"
    with pytest.raises(DiscoveryError, match=unchanged):
        AsgDiscovery(REGION, deadline=2.5).groups(OPT_IN)
    assert aws_proxy.count("DescribeAutoScalingGroups") == 1


def test_a_throttled_page_is_asked_again_and_the_listing_goes_on(
    aws_proxy: AwsProxy,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # botocore's retries are off in the shared client, and discovery had none of its own:
    # one throttled page (AWS's rate limit is shared by the account's every caller) failed
    # the whole listing of hundreds of groups, read again only a --discovery-interval later.
    moto_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    monkeypatch.setattr(aws_discovery, "PAGE", 2)
    names = {make_asg(tags=OPT_IN) for _ in range(3)}
    aws_proxy.fail_next("DescribeAutoScalingGroups", 400, "Throttling", "Rate exceeded", times=2)
    found = AsgDiscovery(REGION, deadline=5.0).groups(OPT_IN)
    assert {g.name for g in found} == names
    assert aws_proxy.count("DescribeAutoScalingGroups") == 4  # 2 throttled, then 2 pages


def test_throttling_past_the_deadline_fails_the_listing_saying_so(
    aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    aws_proxy.fail_next("DescribeAutoScalingGroups", 400, "Throttling", "Rate exceeded", times=50)
    with pytest.raises(DiscoveryError, match=r"failed: Throttling: Rate exceeded"):
        AsgDiscovery(REGION, deadline=1.0).groups(OPT_IN)
    assert 2 <= aws_proxy.count("DescribeAutoScalingGroups") <= 4


def test_an_endpoint_that_repeats_its_next_token_fails_the_listing_instead_of_looping(
    aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A broken proxy or stand-in answering every page with the same NextToken kept the
    # discovery thread paging forever: no listing, no error, the last set never refreshed.
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    page = (
        b'<DescribeAutoScalingGroupsResponse xmlns="http://autoscaling.amazonaws.com/doc/'
        b'2011-01-01/"><DescribeAutoScalingGroupsResult><AutoScalingGroups/>'
        b"<NextToken>page-2</NextToken></DescribeAutoScalingGroupsResult><ResponseMetadata>"
        b"<RequestId>r-1</RequestId></ResponseMetadata></DescribeAutoScalingGroupsResponse>"
    )
    aws_proxy.fail_next("DescribeAutoScalingGroups", 200, "", body=page, times=1000)
    with pytest.raises(DiscoveryError, match="the same NextToken twice after 0 group"):
        AsgDiscovery(REGION, deadline=2.5).groups(OPT_IN)
    assert aws_proxy.count("DescribeAutoScalingGroups") == 2  # the first page, then page-2 again
