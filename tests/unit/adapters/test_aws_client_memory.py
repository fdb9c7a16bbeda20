"""What building an `autoscaling` client leaves behind: not botocore's table of every AWS
endpoint (`aws_client.release_endpoint_tables`), and the next client still finds its own."""

from __future__ import annotations

import gc
import tracemalloc

import boto3
import pytest

from autoscaler.adapters.targets import aws_client


@pytest.fixture(autouse=True)
def _no_endpoint_override(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_AUTO_SCALING", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def _session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1"
    )


def _kept_after(build: object) -> int:
    """Bytes still allocated after `build()` ran and its session was dropped."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()  # type: ignore[operator]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return after - before


def test_a_client_made_for_the_service_does_not_keep_the_endpoint_table_alive() -> None:
    def plain() -> object:
        session = _session()
        return session, session.client("autoscaling", region_name="us-east-1")

    def ours() -> object:
        session = _session()
        return session, aws_client.make_client("us-east-1", 10.0, session=session)

    plain_kept, ours_kept = _kept_after(plain), _kept_after(ours)
    # The endpoint table alone is about 7 MB of Python objects.
    assert plain_kept - ours_kept > 3_000_000, (plain_kept, ours_kept)


def test_clients_built_after_the_release_resolve_their_own_region() -> None:
    session = _session()
    first = aws_client.make_client("us-east-1", 10.0, session=session)
    second = aws_client.make_client("eu-west-1", 10.0, session=session)
    third = aws_client.make_client("cn-north-1", 10.0, session=session)

    assert first.meta.endpoint_url == "https://autoscaling.us-east-1.amazonaws.com"
    assert second.meta.endpoint_url == "https://autoscaling.eu-west-1.amazonaws.com"
    assert third.meta.endpoint_url == "https://autoscaling.cn-north-1.amazonaws.com.cn"
    assert third.meta.partition == "aws-cn"


def test_a_session_of_an_unknown_shape_is_left_alone() -> None:
    class Odd:
        pass

    assert aws_client.release_endpoint_tables(Odd()) is False  # type: ignore[arg-type]
    assert aws_client.release_endpoint_tables(_session()) is True
