"""Which failures to connect to PostgreSQL say the server could not be reached (yet), as
opposed to settings it refused: `run` waits for the first kind at startup
(`errors.StateUnreachable`) and gives up at once on the second.
"""

from __future__ import annotations

import psycopg

# libpq's words (lower case) for a server that is not there, or not yet: nothing in our
# settings is known to be wrong, and the same connection may work later. libpq sets no
# SQLSTATE on a failed connection, so its text is all there is; what is not listed here
# (a wrong password, user or database, TLS refused...) stays a configuration problem.
_UNREACHABLE = (
    "connection refused",
    "no route to host",
    "network is unreachable",
    "timeout expired",
    "could not translate host name",
    "failed to resolve host",
    "temporary failure in name resolution",
    "connection reset by peer",
    "server closed the connection unexpectedly",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "too many clients already",
    "remaining connection slots are reserved",
)


def unreachable(exc: psycopg.Error) -> bool:
    """Whether a failed connection says the server could not be reached (yet)."""
    text = str(exc).lower()
    return isinstance(exc, psycopg.errors.ConnectionTimeout) or any(
        words in text for words in _UNREACHABLE
    )
