"""The session tokens of refreshable credentials (IRSA, AssumeRole: a new one every hour)
are secrets as they are sent, but only while they are in use: a registry of every token of
a month compiled into one pattern stalled each request that brought a new one."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import boto3

from autoscaler import redact
from autoscaler.adapters.targets import aws_client


def send(client: object, token: str) -> None:
    """Fire the client's before-send handlers for a request signed with `token`."""
    request = SimpleNamespace(headers={"X-Amz-Security-Token": token.encode()}, context={})
    client.meta.events.emit(  # type: ignore[attr-defined]
        "before-send.autoscaling.DescribeAutoScalingGroups", request=request
    )


def test_refreshed_session_tokens_are_masked_while_in_use_and_not_kept_forever() -> None:
    session = boto3.session.Session(aws_access_key_id="ASIAEXAMPLE", aws_secret_access_key="k")
    client = aws_client.make_client("eu-west-3", 10.0, session=session)
    before = len(redact.registered())
    tokens = [f"FwoGZXIvYXdzE{uuid.uuid4().hex}" for _ in range(30)]  # 30 hourly refreshes

    for token in tokens:
        send(client, token)
        send(client, token)  # every request of the hour carries it

    assert redact.scrub(" ".join(tokens[-2:])) == "*** ***"  # current, and the one before
    assert len(redact.registered()) - before <= 2 * len(set(redact._forms(tokens[-1])))
