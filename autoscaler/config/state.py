"""Where the state lives (`--state`): a SQLite file, or a PostgreSQL database that several
replicas share; and the PostgreSQL password, from a file or libpq's own `PG*` sources.

The password is never printed: messages name the database as `postgresql://user@host/db`,
and every password known (file, DSN, `PGPASSWORD`) is registered with `autoscaler.redact`.
psycopg is imported only when a PostgreSQL state is used.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from autoscaler.errors import StateError
from autoscaler.redact import register, register_url

if TYPE_CHECKING:
    from autoscaler.adapters.state.postgres import PostgresStateStore

log = logging.getLogger("autoscaler.config")

SCHEMES = ("postgresql://", "postgres://")


def is_postgres(state: str) -> bool:
    """True when `--state` names a PostgreSQL database rather than a SQLite file."""
    return state.startswith(SCHEMES)


def read_password(path: str | None) -> str | None:
    """The password in `path` (first line, stripped); None without a path. An unreadable
    or empty file is a `StateError` (exit 4), never a silent fallback."""
    if not path:
        return None
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise StateError(f"cannot read --state-password-file {path}: {exc.strerror}") from None
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise StateError(f"--state-password-file {path} is empty; put the password in it")
    return password


DEFAULT_CONNECT_TIMEOUT = 5  # seconds, per address tried


def connect_timeout(dsn: str) -> int:
    """Seconds libpq may take to connect: the `connect_timeout` of the connection string,
    else `PGCONNECT_TIMEOUT`, else 5. The controller passes it explicitly (psycopg's
    keyword arguments win over the string's), so without reading it here a value the user
    wrote was silently replaced by 5. libpq's 0 (wait forever) would let one silent host
    stall the loop, so it (or a value that is no whole number) keeps 5, with a warning."""
    from autoscaler.adapters.state.pg import dsn_param  # noqa: PLC0415 - psycopg

    written = dsn_param(dsn, "connect_timeout")
    where = "the --state connection string"
    if written is None and os.environ.get("PGCONNECT_TIMEOUT", "").strip():
        written, where = os.environ["PGCONNECT_TIMEOUT"].strip(), "PGCONNECT_TIMEOUT"
    if written is None:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        seconds = int(str(written).strip())
    except ValueError:
        seconds = 0
    if seconds <= 0:
        log.warning(
            "%s sets connect_timeout=%s, which is not a positive whole number of seconds "
            "(0 waits forever): using %d s",
            where,
            written,
            DEFAULT_CONNECT_TIMEOUT,
        )
        return DEFAULT_CONNECT_TIMEOUT
    return max(2, seconds)  # libpq takes 2 for 1


def open_postgres_state(
    dsn: str,
    password_file: str | None,
    *,
    read_only: bool = False,
    keep_for: timedelta = timedelta(days=14),
    keep_decisions: int = 10_000,
) -> PostgresStateStore:
    """The PostgreSQL store, connected and migrated (or, `read_only`, only checked).

    `run` opens it fenced: it writes only under the leader lease it holds.
    """
    from autoscaler.adapters.state.pg import PostgresSettings  # noqa: PLC0415 - psycopg
    from autoscaler.adapters.state.postgres import PostgresStateStore  # noqa: PLC0415

    password = read_password(password_file)
    # Registered before anything can fail: no text that leaves the process shows them.
    register(password, os.environ.get("PGPASSWORD"))
    register_url(dsn)
    settings = PostgresSettings(dsn=dsn, password=password, connect_timeout=connect_timeout(dsn))
    register(settings.dsn_password())  # a key=value string's `password=`
    if settings.dsn_password():
        log.warning(
            "the --state connection string holds a password, which `ps` shows to every "
            "user: use --state-password-file or PGPASSWORD instead"
        )
    return PostgresStateStore(
        settings,
        fenced=not read_only,
        read_only=read_only,
        keep_for=keep_for,
        keep_decisions=keep_decisions,
    )
