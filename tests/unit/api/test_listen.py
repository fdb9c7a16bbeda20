"""Small service start-up helpers: the listen address, the API token file, and the refusal
to serve an API beyond loopback without a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.config.listen import parse_listen
from autoscaler.errors import AutoscalerError
from autoscaler.service.run import check_exposure, read_token


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


@pytest.mark.parametrize("listen", ["8080", "host:", "host:http", "host:65536"])
def test_a_bad_listen_address_is_a_clear_error(listen: str) -> None:
    with pytest.raises(AutoscalerError, match=f"--listen '{listen}': .*127.0.0.1:8080"):
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


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        pytest.param("pässwort-1234".encode(), "non-ASCII character at byte 2", id="umlaut"),
        pytest.param(b"secret7c4\nsecret3b8", "a control", id="two-lines"),
        pytest.param("\ufeffsecret0d6".encode(), "a byte-order mark", id="bom"),
    ],
)
def test_a_token_a_bearer_header_cannot_carry_is_fatal_naming_the_file_not_the_token(
    tmp_path: Path, token: bytes, problem: str
) -> None:
    # `pässwort` was accepted, then compared as UTF-8 with the latin-1 the server reads
    # headers as: curl and Alertmanager could never authenticate.
    path = tmp_path / "token"
    path.write_bytes(token + b"\n")
    with pytest.raises(AutoscalerError) as caught:
        read_token(str(path))
    message = str(caught.value)
    assert message.startswith(f"--api-token-file {path}: the token holds ")
    assert problem in message
    assert "printable ASCII characters only" in message
    for part in token.decode().lstrip("\ufeff").split():
        assert part not in message


def test_a_token_of_visible_ascii_punctuation_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("Ab9-._~+/!#$%&*=\r\n")
    assert read_token(str(path)) == "Ab9-._~+/!#$%&*="
    path.write_text("two words\tand a tab\n")  # they worked before, and still do
    assert read_token(str(path)) == "two words\tand a tab"


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:8080", ":8080", "[::]:8080", "10.0.0.5:80", "myhost:1"]
)
def test_an_api_beyond_loopback_without_a_token_is_refused_saying_how_to_fix_it(
    listen: str,
) -> None:
    with pytest.raises(AutoscalerError) as caught:
        check_exposure(listen, None, insecure=False)
    message = str(caught.value)
    assert f"refusing to serve the HTTP API on {listen} without a token" in message
    for way_out in ("--api-token-file", "AUTOSCALER_API_TOKEN_FILE", "--insecure-no-auth"):
        assert way_out in message
    assert f"--listen 127.0.0.1:{listen.rpartition(':')[2]}" in message


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "127.9.9.9:1", "[::1]:80", "localhost:8"])
def test_an_api_on_loopback_needs_no_token(listen: str) -> None:
    check_exposure(listen, None, insecure=False)


def test_a_token_or_the_insecure_flag_allows_any_address(caplog: pytest.LogCaptureFixture) -> None:
    check_exposure("0.0.0.0:8080", "s3cret", insecure=False)
    assert not caplog.records
    check_exposure("0.0.0.0:8080", None, insecure=True)
    assert "--insecure-no-auth" in caplog.text
