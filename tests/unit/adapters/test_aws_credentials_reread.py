"""Credentials AWS rejected are read again, at most once per `CREDENTIALS_REREAD` seconds
per AWS configuration (`SharedClient.renew`): a key rotated in the credentials file is
picked up at once, while a key that is simply wrong does not have a session and a client
built again at every call of every target. No request is sent here: building a session
and a client reads the credentials file, nothing more."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from autoscaler.adapters.targets import aws_client

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(aws_client, "monotonic", clock)
    return clock


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWS configuration whose credentials come from this file (key AKIDFIRST)."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "credentials"
    write(path, "AKIDFIRST")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    return path


def write(path: Path, key: str) -> None:
    path.write_text(f"[default]\naws_access_key_id = {key}\naws_secret_access_key = s\n")


def key_of(client: AutoScalingClient) -> str:
    """The access key `client` signs with (botocore's private signer: not in the stubs)."""
    access_key: str = client._request_signer._credentials.access_key  # type: ignore[attr-defined]
    return access_key


def test_rejected_credentials_are_read_again_at_most_once_per_interval(
    credentials: Path, clock: Clock
) -> None:
    shared = aws_client.shared("eu-west-3", 10.0)
    first = shared.client
    write(credentials, "AKIDSECOND")  # rotated

    assert shared.renew(first)  # rejected: read again, built again
    second = shared.client
    assert second is not first and key_of(second) == "AKIDSECOND"
    assert aws_client.shared_client("eu-west-3", 10.0) is second  # what every target gets

    write(credentials, "AKIDTHIRD")
    clock.now += aws_client.CREDENTIALS_REREAD - 1
    assert not shared.renew(second)  # too soon: the call's rejection stands
    assert shared.client is second
    said = shared.reread()
    assert said is not None and "read again 29s ago" in said and "at most every 30 s" in said

    clock.now += 1
    assert shared.renew(second)
    assert key_of(shared.client) == "AKIDTHIRD"


def test_a_client_renewed_meanwhile_is_used_as_it_is(credentials: Path, clock: Clock) -> None:
    # Worker threads share the client: all of those whose calls were rejected ask at once,
    # and one session and one client are built; each sends its call once more.
    shared = aws_client.shared("eu-west-3", 10.0)
    rejected = shared.client
    write(credentials, "AKIDSECOND")
    start = threading.Barrier(8)

    def renew() -> tuple[bool, object]:
        start.wait()
        return bool(shared.renew(rejected)), shared.client

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: renew(), range(8)))
    assert all(ok for ok, _ in answers)
    assert len({id(client) for _, client in answers}) == 1
    assert key_of(shared.client) == "AKIDSECOND"


def test_the_other_clients_of_a_configuration_use_the_credentials_read_again(
    credentials: Path, clock: Clock
) -> None:
    # Read again for one region's client: another region's, rejected the next moment, is
    # built from what was read, not refused for being within the interval.
    paris = aws_client.shared("eu-west-3", 10.0)
    virginia = aws_client.shared("us-east-1", 10.0)
    write(credentials, "AKIDSECOND")
    assert paris.renew(paris.client)
    assert virginia.renew(virginia.client)
    assert key_of(virginia.client) == "AKIDSECOND"
    assert virginia.client.meta.region_name == "us-east-1"


def test_credentials_gone_from_the_file_keep_the_client_and_say_so(
    credentials: Path, clock: Clock
) -> None:
    shared = aws_client.shared("eu-west-3", 10.0)
    first = shared.client
    credentials.write_text("")
    assert not shared.renew(first)
    assert shared.client is first
    said = shared.reread()
    assert said is not None and "none were found" in said


def test_a_client_given_to_a_target_is_never_rebuilt(credentials: Path, clock: Clock) -> None:
    client = aws_client.make_client("eu-west-3", 10.0)
    given = aws_client.SharedClient.given(client)
    assert not given.renew(client)
    assert given.client is client and given.reread() is None
