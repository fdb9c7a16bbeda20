"""PostgreSQL plumbing shared by the state store and the leader lease: how to connect, the
tables, and how a database written by an older version is upgraded.

The controller creates and migrates its own tables (all named `autoscaler_*`, so a shared
database is fine): `autoscaler_schema` records each applied version, and migrations run
under an advisory lock, so two replicas starting together never race. A database written
by a newer version is refused rather than guessed at.

The password never appears in anything we print: `describe()` shows where we connect
without it, and `Connector.safe()` masks it in error texts that a driver might echo.

Every wait on the server is bounded. A server that is gone refuses the connection, and a
lost host ends in TCP keepalives, but a server that is alive and does not answer (stopped,
a frozen VM, a backend stuck on its disk) keeps the connection open: the kernel
acknowledges every byte we send, so neither keepalives nor `tcp_user_timeout` fire, and
the server-side `statement_timeout` cannot fire in a server that does not run. libpq would
wait forever, and every evaluation queued behind that call with it. So each statement
also has a deadline of our own (`answer_timeout`): a watchdog thread cuts the connection
of a call still waiting past it, the call fails with a `StateError` that says why, and
the next call connects again.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import conninfo

from autoscaler.adapters.socket_watchdog import SocketWatchdog
from autoscaler.adapters.state.pg_errors import unreachable
from autoscaler.errors import StateError, StateUnreachable
from autoscaler.redact import scrub

_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")

# At most this many seconds beyond the server's `statement_timeout` (which the server
# enforces itself, when it runs) before the watchdog cuts a connection waiting on it.
ANSWER_GRACE = 5.0
LOCK_KEY = 0x6175746F  # "auto": the advisory lock migrations run under
LATEST = 1
# Cuts a connection waiting past its `answering` deadline (`adapters.socket_watchdog`).
_WATCHDOG = SocketWatchdog("postgres-watchdog")

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

    @property
    def answer_timeout(self) -> float:
        """How long a statement may go without an answer before we cut the connection: the
        server's own `statement_timeout`, then as long again (at most `ANSWER_GRACE`) for
        its error to reach us."""
        return self.statement_timeout + min(self.statement_timeout, ANSWER_GRACE)

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
        return dsn_param(self.dsn, "password")


def dsn_param(dsn: str, name: str) -> str | None:
    """The parameter `name` written in the connection string `dsn` (URI or key=value), or
    None, also when the string cannot be parsed (connecting then says why)."""
    with contextlib.suppress(psycopg.Error):
        found = conninfo.conninfo_to_dict(dsn).get(name)
        return str(found) if found else None
    return None


# The server's side of each connection, so that a session whose client stopped (paused,
# frozen, its host lost) mid-transaction does not keep its locks (the lease row's, which
# a takeover waits for) for PostgreSQL's defaults: forever idle in a transaction, about
# two hours of TCP keepalives. Set only where the server knows them (`tcp_user_timeout`
# came with PostgreSQL 12); keepalives do not apply over a Unix socket.
_SERVER_SIDE = (
    "SELECT set_config(s.name, s.value, false)"
    " FROM unnest(%s::text[], %s::text[]) AS s(name, value)"
    " WHERE s.name IN (SELECT name FROM pg_settings)"
)


def _server_side(timeout_ms: int) -> tuple[list[str], list[str]]:
    """The names and values `_SERVER_SIDE` sets: a transaction left idle ends after as
    long as a statement may run (a fenced write sets a third of the lease's TTL for itself,
    `postgres._FENCE`), and a vanished client is noticed in about 11 s, as on our side."""
    settings = {
        "idle_in_transaction_session_timeout": timeout_ms,
        "tcp_keepalives_idle": 5,
        "tcp_keepalives_interval": 2,
        "tcp_keepalives_count": 3,
        "tcp_user_timeout": 10_000,
    }
    return list(settings), [str(value) for value in settings.values()]


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
            # libpq's connect_timeout bounds the whole connection, authentication included.
            conn = psycopg.connect(self.settings.dsn, cursor_factory=_Cursor, **extra)
            timeout_ms = int(self.settings.statement_timeout * 1000)
            try:
                with self.answering(conn, f"state database {self.settings.describe()}"):
                    conn.execute("SET TIME ZONE 'UTC'")
                    conn.execute(f"SET statement_timeout = {timeout_ms}")
                    conn.execute(f"SET lock_timeout = {timeout_ms}")
                    conn.execute(_SERVER_SIDE, _server_side(timeout_ms))
            except BaseException:
                conn.close()  # not left to the garbage collector
                raise
        except psycopg.Error as exc:
            raise (StateUnreachable if unreachable(exc) else StateError)(
                f"cannot connect to state database {self.settings.describe()}: "
                f"{self.safe(exc)}; check the address, that the server runs, and the "
                "password (--state-password-file, PGPASSWORD or ~/.pgpass)"
            ) from None
        return conn

    @contextlib.contextmanager
    def answering(self, conn: psycopg.Connection[Any], what: str) -> Iterator[None]:
        """Run the block's statements on `conn` (opened by `connect`) with the watchdog on:
        each must be answered within `answer_timeout` of being sent (the block's last
        one, and the commit after it, within that of the last statement sent). When one is
        not, the connection is cut and closed (the caller connects again) and the block's
        error becomes a `StateError` that says so, prefixed with `what`. A connection cut
        just as its block ended (its answers in, the block not yet out) is closed as well:
        nothing would tell the next call it is cut before its first statement failed.
        """
        seconds = self.settings.answer_timeout
        watch = _WATCHDOG.arm(conn, _socket_of(conn), seconds)
        try:
            yield
        except psycopg.Error:
            if not _WATCHDOG.disarm(watch):
                raise
            raise StateError(
                f"{what}: no answer within {seconds:g} s (the statement timeout is "
                f"{self.settings.statement_timeout:g} s): the server "
                "holds the connection but does not answer (hung, stopped, or stuck on its "
                "disk); the connection was cut and the next call connects again"
            ) from None
        finally:
            if _WATCHDOG.disarm(watch):
                with contextlib.suppress(Exception):
                    conn.close()

    @staticmethod
    def restart_deadline(conn: psycopg.Connection[Any]) -> None:
        """Count the deadline of `conn`'s `answering` block from now: before a commit,
        which is not a cursor's statement, so it gets as long as any statement."""
        _WATCHDOG.restart(conn)

    def safe(self, exc: BaseException | str) -> str:
        """The text of `exc` on one line, with every known password masked (and anything
        that looks like one, should a driver quote a connection string it could not parse)."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = scrub(_PASSWORD_PARAM.sub(r"\1***", text))
        return _URI_PASSWORD.sub(r"\1***@", text)


class _Cursor(psycopg.Cursor[Any]):
    """A cursor whose every statement restarts its connection's deadline (`answering`),
    so a transaction of many quick statements is not cut for its total length."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        _WATCHDOG.restart(self.connection)
        return super().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> None:
        _WATCHDOG.restart(self.connection)
        super().executemany(*args, **kwargs)


def _socket_of(conn: psycopg.Connection[Any]) -> int:
    """The descriptor of `conn`'s socket, -1 when it has none (closed, or lost)."""
    try:
        return conn.pgconn.socket
    except psycopg.Error:
        return -1


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
        found = known(int(row[0]) if row else 0, where)
        for version in range(found + 1, LATEST + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO autoscaler_schema (version) VALUES (%s)", (version,))
    return found


def known(found: int, where: str) -> int:
    """`found`, the schema version of the database at `where`, if this code knows it;
    `StateError` for one written by a newer version (read as ours, it could be misread)."""
    if found > LATEST:
        raise StateError(
            f"state database {where} has schema version {found}, written by a newer "
            f"autoscaler (this one knows up to {LATEST}); upgrade this controller"
        )
    return found


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version of the database, 0 when the controller never wrote to it."""
    row = conn.execute("SELECT to_regclass('autoscaler_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    found = conn.execute("SELECT coalesce(max(version), 0) FROM autoscaler_schema").fetchone()
    return int(found[0]) if found else 0
