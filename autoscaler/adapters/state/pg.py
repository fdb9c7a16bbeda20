"""PostgreSQL plumbing shared by the state store and the leader lease: how to connect, the
tables, and how a database written by an older version is upgraded.

The controller creates and migrates its own tables (all named `autoscaler_*`, so a shared
database is fine): `autoscaler_schema` records each applied version, and migrations run
under an advisory lock, so two replicas starting together never race. A database written
by a newer version is refused rather than guessed at.

The password never appears in anything we print: `describe()` shows where we connect
without it, and `Connector.safe()` masks it in error texts that a driver might echo.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import conninfo

from autoscaler.errors import StateError
from autoscaler.redact import scrub

_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")

LOCK_KEY = 0x6175746F  # "auto": the advisory lock migrations run under
LATEST = 1

# One entry per schema version, applied in order; never edit a released one, add the next.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE autoscaler_targets (
            target_key text PRIMARY KEY,
            last_scaled_at timestamptz NOT NULL
        )""",
        """CREATE TABLE autoscaler_memory (
            policy text PRIMARY KEY,
            target_key text NOT NULL,
            recommendations text NOT NULL,
            missing_data_streak integer NOT NULL,
            missing_data_since timestamptz,
            updated_at timestamptz NOT NULL
        )""",
        # (policy, time) is unique: a write retried after a lost answer is not a second row.
        """CREATE TABLE autoscaler_decisions (
            id bigserial PRIMARY KEY,
            policy text NOT NULL,
            time timestamptz NOT NULL,
            payload text NOT NULL,
            holder text,
            epoch bigint,
            UNIQUE (policy, time)
        )""",
        "CREATE INDEX autoscaler_decisions_by_policy ON autoscaler_decisions (policy, id)",
        "CREATE INDEX autoscaler_decisions_by_time ON autoscaler_decisions (time)",
        """CREATE TABLE autoscaler_lease (
            name text PRIMARY KEY,
            holder text NOT NULL,
            epoch bigint NOT NULL,
            expires_at timestamptz NOT NULL,
            acquired_at timestamptz NOT NULL,
            renewed_at timestamptz NOT NULL
        )""",
    ),
)
assert len(MIGRATIONS) == LATEST


@dataclass(frozen=True, kw_only=True)
class PostgresSettings:
    """Where the state lives. `password` (from a file) wins over one in the DSN; without
    either, libpq reads `PGPASSWORD` or `PGPASSFILE` (~/.pgpass) as usual."""

    dsn: str
    password: str | None = field(default=None, repr=False)
    connect_timeout: int = 5
    statement_timeout: float = 10.0

    def describe(self) -> str:
        """`postgresql://host:port/db (user U)`, never with the password (nor with `user@`,
        which the process-wide scrubber masks as URL credentials)."""
        try:
            params = conninfo.conninfo_to_dict(self.dsn)
        except psycopg.Error:
            return "postgresql://(unparsable connection string)"
        host = params.get("host") or params.get("hostaddr") or "(PGHOST)"
        port = f":{params['port']}" if params.get("port") else ""
        user = f" (user {params['user']})" if params.get("user") else ""
        return f"postgresql://{host}{port}/{params.get('dbname') or '(PGDATABASE)'}{user}"

    def dsn_password(self) -> str | None:
        """The password written into the DSN itself, if any (`ps` shows it: discouraged)."""
        with contextlib.suppress(psycopg.Error):
            found = conninfo.conninfo_to_dict(self.dsn).get("password")
            return str(found) if found else None
        return None


class Connector:
    """Opens connections to the state database with bounded waits, and masks the password
    in what it reports."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._secrets = [s for s in (settings.password, settings.dsn_password()) if s]

    def connect(self, *, purpose: str) -> psycopg.Connection[Any]:
        """An autocommit connection in UTC; `StateError` (password masked) when it fails."""
        extra: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": self.settings.connect_timeout,
            "application_name": f"autoscaler-{purpose}",
            # A peer that vanished (host lost, network split) fails the connection in
            # seconds instead of the kernel's default of minutes.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": 10_000,
        }
        if self.settings.password:
            extra["password"] = self.settings.password
        try:
            conn = psycopg.connect(self.settings.dsn, **extra)
            timeout_ms = int(self.settings.statement_timeout * 1000)
            conn.execute("SET TIME ZONE 'UTC'")
            conn.execute(f"SET statement_timeout = {timeout_ms}")
            conn.execute(f"SET lock_timeout = {timeout_ms}")
        except psycopg.Error as exc:
            raise StateError(
                f"cannot connect to state database {self.settings.describe()}: "
                f"{self.safe(exc)}; check the address, that the server runs, and the "
                "password (--state-password-file, PGPASSWORD or ~/.pgpass)"
            ) from None
        return conn

    def safe(self, exc: BaseException | str) -> str:
        """The text of `exc` on one line, with every known password masked (and anything
        that looks like one, should a driver quote a connection string it could not parse)."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = scrub(_PASSWORD_PARAM.sub(r"\1***", text))
        return _URI_PASSWORD.sub(r"\1***@", text)


def migrate(conn: psycopg.Connection[Any], where: str) -> int:
    """Create or upgrade the tables to `LATEST`; the version found before. Raises
    `StateError` for a database written by a newer version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS autoscaler_schema ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT coalesce(max(version), 0) FROM autoscaler_schema").fetchone()
        found = int(row[0]) if row else 0
        if found > LATEST:
            raise StateError(
                f"state database {where} has schema version {found}, written by a newer "
                f"autoscaler (this one knows up to {LATEST}); upgrade this controller"
            )
        for version in range(found + 1, LATEST + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO autoscaler_schema (version) VALUES (%s)", (version,))
    return found


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version of the database, 0 when the controller never wrote to it."""
    row = conn.execute("SELECT to_regclass('autoscaler_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    found = conn.execute("SELECT coalesce(max(version), 0) FROM autoscaler_schema").fetchone()
    return int(found[0]) if found else 0
