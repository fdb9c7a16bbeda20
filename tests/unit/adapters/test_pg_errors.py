"""Which failed connections to PostgreSQL `run` waits out at startup: libpq sets no SQLSTATE
on them, so its words decide (the texts below are libpq's and the server's, verbatim)."""

from __future__ import annotations

import psycopg
import pytest

from autoscaler.adapters.state.pg_errors import unreachable

PREFIX = 'connection failed: connection to server at "10.0.0.5", port 5432 failed: '


@pytest.mark.parametrize(
    "text",
    [
        PREFIX + "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
        "connections?",
        PREFIX + "No route to host",
        PREFIX + "FATAL:  the database system is starting up",
        PREFIX + "FATAL:  the database system is shutting down",
        PREFIX + "FATAL:  sorry, too many clients already",
        "failed to resolve host 'db.internal': [Errno -3] Temporary failure in name resolution",
    ],
)
def test_a_server_not_there_yet_is_unreachable(text: str) -> None:
    assert unreachable(psycopg.OperationalError(text))


def test_a_connection_timeout_is_unreachable() -> None:
    assert unreachable(psycopg.errors.ConnectionTimeout("connection timeout expired"))


@pytest.mark.parametrize(
    "text",
    [
        PREFIX + 'FATAL:  password authentication failed for user "autoscaler"',
        PREFIX + 'FATAL:  database "autoscaler" does not exist',
        PREFIX + 'FATAL:  role "autoscaler" does not exist',
        PREFIX + "fe_sendauth: no password supplied",
        PREFIX + "server does not support SSL, but SSL was required",
        PREFIX + 'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "autoscaler"',
    ],
)
def test_settings_the_server_refuses_are_not_unreachable(text: str) -> None:
    assert not unreachable(psycopg.OperationalError(text))
