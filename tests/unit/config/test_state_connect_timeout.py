"""The PostgreSQL state's connect timeout: what the user wrote is what libpq gets."""

from __future__ import annotations

import logging

import pytest

from autoscaler.config.state import DEFAULT_CONNECT_TIMEOUT, connect_timeout

URI = "postgresql://autoscaler@db.internal:5432/autoscaler"


@pytest.fixture(autouse=True)
def _no_pg_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)


def test_without_a_setting_the_default_applies() -> None:
    assert connect_timeout(URI) == DEFAULT_CONNECT_TIMEOUT == 5


@pytest.mark.parametrize(
    ("dsn", "seconds"),
    [
        (f"{URI}?connect_timeout=20", 20),
        ("host=db.internal dbname=autoscaler connect_timeout=3", 3),
        (f"{URI}?sslmode=require&connect_timeout=1", 2),  # libpq's least
    ],
)
def test_a_timeout_written_in_the_connection_string_is_kept(dsn: str, seconds: int) -> None:
    # psycopg's keyword arguments win over the string's: it used to be replaced by 5.
    assert connect_timeout(dsn) == seconds


def test_pgconnect_timeout_applies_when_the_string_says_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "12")
    assert connect_timeout(URI) == 12
    assert connect_timeout(f"{URI}?connect_timeout=7") == 7  # the string wins, as in libpq


@pytest.mark.parametrize("written", ["0", "-3", "soon"])
def test_waiting_forever_or_garbage_keeps_the_default_and_says_so(
    written: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="autoscaler.config"):
        assert connect_timeout(f"host=db connect_timeout={written}") == DEFAULT_CONNECT_TIMEOUT
    assert f"connect_timeout={written}" in caplog.text
    assert "not a positive whole number" in caplog.text
