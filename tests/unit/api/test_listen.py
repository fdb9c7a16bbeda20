"""Small service start-up helpers: the listen address and the API token file."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.api.http import parse_listen
from autoscaler.errors import AutoscalerError
from autoscaler.service.run import read_token


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        pytest.param("127.0.0.1:8080", ("127.0.0.1", 8080), id="ipv4"),
        pytest.param("[::1]:9000", ("::1", 9000), id="ipv6"),
        pytest.param(":8080", ("0.0.0.0", 8080), id="every-interface"),
        pytest.param("localhost:0", ("localhost", 0), id="name"),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["8080", "host:", "host:http"])
def test_a_bad_listen_address_is_a_clear_error(listen: str) -> None:
    with pytest.raises(AutoscalerError, match="HOST:PORT"):
        parse_listen(listen)


def test_the_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("s3cret\n")
    assert read_token(str(path)) == "s3cret"
    assert read_token(None) is None


def test_an_empty_or_missing_token_file_is_fatal(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(AutoscalerError, match="empty"):
        read_token(str(empty))
    with pytest.raises(AutoscalerError, match="cannot read"):
        read_token(str(tmp_path / "missing"))
