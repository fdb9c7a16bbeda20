"""Credentials that appear after the first use: an instance role attached late, an IMDS
timeout at boot, a credentials file mounted later. botocore builds a client without
credentials when the chain finds none, and that client never looks again: kept as the
shared client of its region, every ASG target and discovery failed until a restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autoscaler.adapters.targets import aws_client
from autoscaler.errors import TargetForbidden


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWS configuration with no credentials anywhere (and no instance metadata);
    the path of the credentials file it reads, not there yet."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    credentials = tmp_path / "credentials"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    return credentials


def test_credentials_found_later_are_used_without_a_restart(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TargetForbidden, match="no AWS credentials found"):
        aws_client.shared_client("eu-west-3", 10.0)
    no_credentials.write_text(
        "[default]\naws_access_key_id = AKIDLATER\naws_secret_access_key = s\n"
    )
    # Within the retry interval the chain is not walked again (an instance role's lookup
    # may wait on IMDS): the same answer at once.
    with pytest.raises(TargetForbidden, match="looked for again every 30 s"):
        aws_client.shared_client("eu-west-3", 10.0)
    monkeypatch.setattr(aws_client, "CREDENTIALS_RETRY", 0.0)
    client = aws_client.shared_client("eu-west-3", 10.0)
    # What it signs with (botocore's private signer: boto3-stubs do not declare it).
    credentials = client._request_signer._credentials  # type: ignore[attr-defined]
    assert credentials is not None and credentials.access_key == "AKIDLATER"
