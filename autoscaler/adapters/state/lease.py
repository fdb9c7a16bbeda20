"""The leader lease in PostgreSQL: one row (holder, epoch, expiry), judged by the database's
clock alone, so replicas whose clocks disagree still agree on who leads.

- `acquire` takes the lease when it is free or expired (a new epoch), or renews it when
  this holder still has the epoch it names (also just after it expired, when nobody took
  it meanwhile: nothing happened that this holder does not know).
- `release` ends the lease at once and notifies the standbys (`LISTEN autoscaler_lease`),
  so one takes over without waiting for the expiry.
- `confirm` asks whether the epoch is still current with time left, right before a scale
  call.

Every answer carries the database's time, which the service uses as its clock: for a take
or a renewal, the time the row was written (`clock_timestamp()`, after any wait on the
row's lock, which the leader's own fenced writes hold) and how long the statement waited
before (from `now()`, its start), so a slow renewal still anchors that clock precisely.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from autoscaler.adapters.state.pg import Connector, PostgresSettings
from autoscaler.errors import StateError

CHANNEL = "autoscaler_lease"

_ACQUIRE = """
INSERT INTO autoscaler_lease AS l (name, holder, epoch, expires_at, acquired_at, renewed_at)
VALUES (%(name)s, %(holder)s, 1, now() + %(ttl)s * interval '1 second', now(), now())
ON CONFLICT (name) DO UPDATE SET
    holder = excluded.holder,
    epoch = CASE WHEN l.holder = excluded.holder AND l.epoch = %(epoch)s
                 THEN l.epoch ELSE l.epoch + 1 END,
    acquired_at = CASE WHEN l.holder = excluded.holder AND l.epoch = %(epoch)s
                       THEN l.acquired_at ELSE now() END,
    expires_at = excluded.expires_at,
    renewed_at = now()
WHERE l.expires_at <= now() OR (l.holder = excluded.holder AND l.epoch = %(epoch)s)
RETURNING holder, epoch, expires_at, clock_timestamp(), now()
"""
_CURRENT = "SELECT holder, epoch, expires_at, now() FROM autoscaler_lease WHERE name = %s"
_RELEASE = (
    "UPDATE autoscaler_lease SET expires_at = now(), renewed_at = now()"
    " WHERE name = %s AND holder = %s AND epoch = %s RETURNING 1"
)
# Whether the lease may be taken now: nobody holds it, or it expired (a release ends it).
_FREE = "SELECT expires_at <= now() FROM autoscaler_lease WHERE name = %s"
_CONFIRM = (
    "SELECT extract(epoch FROM expires_at - now()) FROM autoscaler_lease"
    " WHERE name = %s AND holder = %s AND epoch = %s AND expires_at > now()"
)


@dataclass(frozen=True, kw_only=True)
class LeaseState:
    """The lease as the database saw it: who holds it, and the database's time then.

    `held` is True when the asker holds it (just taken or renewed); `holder` is None when
    nobody ever held it.
    """

    held: bool
    holder: str | None
    epoch: int
    expires_at: datetime | None
    db_now: datetime
    # Seconds the database spent on the statement before reading `db_now` (a wait on the
    # lease row's lock): not part of the network's delay in the round trip.
    waited: float = 0.0

    def seconds_left(self) -> float:
        if self.expires_at is None:
            return 0.0
        return max(0.0, (self.expires_at - self.db_now).total_seconds())


class PostgresLease:
    """The `name` lease on the state database; thread-safe (one connection per role)."""

    def __init__(self, settings: PostgresSettings, *, name: str = "leader") -> None:
        self._connector = Connector(settings)
        self.where = settings.describe()
        self.name = name
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._listener: psycopg.Connection[Any] | None = None

    def _run(self, sql: str, args: Any) -> tuple[Any, ...] | None:
        """One statement's row. A connection kept from an earlier call may have died since
        unnoticed (a database restart ends every session): when the statement finds it
        broken, it is sent once more on a new connection. Each of ours may be: a release or
        a renewal done twice is done once, and a take whose answer was lost is then seen as
        held by this holder under another epoch, as the next step would have seen it."""
        with self._lock:
            conn = self._conn
            kept = conn is not None and not (conn.closed or conn.broken)
            try:
                while True:
                    if conn is None or not kept:
                        self._close(self._conn)
                        conn = self._conn = self._connector.connect(purpose="lease")
                    try:
                        with self._connector.answering(conn, f"leader lease in {self.where}"):
                            return conn.execute(sql, args).fetchone()
                    except psycopg.OperationalError:
                        if not (kept and conn.broken):
                            raise
                        kept = False
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError):
                    self._close(self._conn)
                    self._conn = None
                raise StateError(
                    f"leader lease in {self.where}: {_locked(exc)}{self._connector.safe(exc)}"
                ) from None

    def acquire(self, holder: str, ttl: float, *, epoch: int | None) -> LeaseState:
        """Take or renew the lease for `ttl` seconds of database time; `held` says if it
        worked. `epoch` is the one this holder has (None: it has none). `StateError` when
        the database cannot be reached."""
        args = {"name": self.name, "holder": holder, "ttl": ttl, "epoch": epoch}
        row = self._run(_ACQUIRE, args)
        if row is not None:
            written, started = _utc(row[3]) or datetime.now(UTC), _utc(row[4])
            waited = (written - started).total_seconds() if started is not None else 0.0
            return LeaseState(
                held=True, holder=row[0], epoch=int(row[1]), expires_at=_utc(row[2]),
                db_now=written, waited=max(0.0, waited),
            )  # fmt: skip
        return self.current()

    def current(self) -> LeaseState:
        """Who holds the lease now (never `held`)."""
        row = self._run(_CURRENT, (self.name,))
        if row is None:
            now = self._run("SELECT now()", ())
            assert now is not None
            return LeaseState(held=False, holder=None, epoch=0, expires_at=None, db_now=now[0])
        return LeaseState(
            held=False, holder=row[0], epoch=int(row[1]), expires_at=_utc(row[2]),
            db_now=_utc(row[3]) or datetime.now(UTC),
        )  # fmt: skip

    def confirm(self, holder: str, epoch: int) -> float | None:
        """Seconds of database time `holder` still has on `epoch`; None when it is no
        longer current (expired or taken over)."""
        row = self._run(_CONFIRM, (self.name, holder, epoch))
        return None if row is None else float(row[0])

    def release(self, holder: str, epoch: int) -> bool:
        """End the lease now if `holder` still has `epoch`, and wake the standbys."""
        released = self._run(_RELEASE, (self.name, holder, epoch)) is not None
        if released:
            self._run("SELECT pg_notify(%s, %s)", (CHANNEL, f"{holder} released {epoch}"))
        return released

    def wait_for_release(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a holder to release the lease; True if one did,
        or if the lease is found free when listening starts (anew).

        A notification sent while nobody listens is lost: at the first call, and after a
        database restart ended the listening session (which only shows when we next wait
        on it). So a kept session found ended is replaced at once (not an error), and each
        time listening starts the lease row is read: a release made before it counts.

        Raises `StateError` when the database cannot be reached (after waiting a little,
        so a caller in a loop does not spin).
        """
        try:
            listener = self._listener
            if listener is not None and not (listener.closed or listener.broken):
                try:
                    return _heard(listener, timeout)
                except psycopg.OperationalError:
                    if not listener.broken:
                        raise
                # Ended under us (a database restart): listen anew, once in this call.
            self._close(listener)
            self._listener = None
            listener = self._connector.connect(purpose="lease-listen")
            self._listener = listener
            with self._connector.answering(listener, "LISTEN"):  # + the lease, below
                listener.execute(f"LISTEN {CHANNEL}")
                row = listener.execute(_FREE, (self.name,)).fetchone()
            if row is None or row[0]:
                return True
            return _heard(listener, timeout)
        except (psycopg.Error, StateError) as exc:
            self._close(self._listener)
            self._listener = None
            threading.Event().wait(min(timeout, 0.5))
            text = exc if isinstance(exc, StateError) else self._connector.safe(exc)
            raise StateError(f"leader lease in {self.where}: {text}") from None

    def close(self) -> None:
        with self._lock:
            self._close(self._conn)
            self._conn = None
        self._close(self._listener)
        self._listener = None

    @staticmethod
    def _close(conn: psycopg.Connection[Any] | None) -> None:
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()


def _locked(exc: psycopg.Error) -> str:
    """What to say first when `exc` is a wait on the lease row's lock that timed out: the
    database answers, but a session holds the row (a leader paused in a write, which the
    server ends after a third of the TTL, or someone's open transaction)."""
    waited = isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled)
    if waited and '"autoscaler_lease"' in (exc.diag.context or ""):
        return "lease row locked by another session (a leader paused mid-write?): "
    return ""


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _heard(listener: psycopg.Connection[Any], timeout: float) -> bool:
    """Whether a notification comes on `listener` (listening) within `timeout` seconds."""
    return any(True for _ in listener.notifies(timeout=timeout, stop_after=1))
