"""Durable memory in PostgreSQL: the same state as the SQLite store, shared by replicas.

Several controllers may point at one database (`run --ha`), but only the holder of the
leader lease (`lease.PostgresLease`) may write: every write runs in a transaction that
first locks the lease row `FOR SHARE` and checks that this replica's epoch is current and
unexpired *in the database's time*. A takeover updates that row, so it waits for a write
in flight to commit, and a write that starts after a takeover finds another epoch and is
refused with `NotLeader`: a replica that was paused and wakes up after losing the lease
cannot write, whatever its own clock says. A writer paused (or cut off) in the middle of
its transaction would hold the lease row, and the takeover, for as long as it stayed so:
the server ends a fenced transaction idle for a third of the lease's TTL, and the writer's
commit, when it wakes, fails.

A decision is stored once: `(policy, time)` is unique, so a write retried after a lost
answer (the commit happened, the reply did not arrive) adds no second row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from autoscaler.adapters.state import schema
from autoscaler.adapters.state.pg import Connector, PostgresSettings, known, migrate, schema_version
from autoscaler.core.model import Decision, Memory, Recommendation
from autoscaler.errors import NotLeader, StateError

_LOG = logging.getLogger(__name__)

LEASE = "leader"  # the name of the one lease row

# Holds the lease row against a takeover until the transaction ends, and ends the
# transaction (and the session) should it sit idle for a third of the lease's TTL (the
# holder's `--lease-ttl`, as its last renewal wrote it) or the statement timeout,
# whichever is shorter: a writer paused or cut off mid-write must not hold the row, and
# with it the takeover, past about its lease.
_FENCE = (
    "SELECT set_config('idle_in_transaction_session_timeout', greatest(100, least(%s,"
    " extract(epoch FROM expires_at - renewed_at) * 1000 / 3))::int::text, true)"
    " FROM autoscaler_lease WHERE name = %s AND holder = %s AND epoch = %s"
    " AND expires_at > now() FOR SHARE"
)


class PostgresStateStore:
    """`ports.StateStore` on PostgreSQL; see the module docstring.

    `fenced=True` (the `run` command) refuses every write unless `fence_with()` named the
    lease this replica holds; `read_only=True` (`plan`) never creates or writes anything.
    """

    generation = 0  # the database is never replaced under us the way a file can be

    def __init__(
        self,
        settings: PostgresSettings,
        *,
        fenced: bool = False,
        read_only: bool = False,
        keep_decisions: int = 10_000,
        keep_for: timedelta = timedelta(days=14),
    ) -> None:
        self._connector = Connector(settings)
        self.where = settings.describe()
        self._fenced = fenced
        self._read_only = read_only
        self._keep_decisions = keep_decisions
        self._keep_for = keep_for
        self._lock = threading.Lock()
        self._token: tuple[str, int] | None = None
        self._problem: str | None = None
        self._closed = False
        self._idle_ms = int(settings.statement_timeout * 1000)
        self._conn: psycopg.Connection[Any] | None = self._connector.connect(purpose="state")
        try:
            with self._connector.answering(self._conn, f"state database {self.where}"):
                self._prepare(read_only)
        except psycopg.Error as exc:
            self._conn.close()
            raise StateError(
                f"cannot use state database {self.where}: {self._connector.safe(exc)}; check "
                "that the user may create tables in it"
            ) from None
        except StateError:
            self._conn.close()
            raise

    def _prepare(self, read_only: bool) -> None:
        """Check that read-only state exists in a version this code knows, or create and
        migrate the tables."""
        assert self._conn is not None
        if not read_only:
            migrate(self._conn, self.where)
        elif known(schema_version(self._conn), self.where) == 0:
            raise StateError(
                f"state database {self.where} holds no autoscaler state; point "
                "--state at the database of a running or past `autoscaler run`"
            )

    # --- fencing ---------------------------------------------------------------------------

    def fence_with(self, holder: str, epoch: int) -> None:
        """Write from now on only while lease `epoch` of `holder` is current."""
        with self._lock:
            self._token = (holder, epoch)

    def unfence(self) -> None:
        """Write nothing from now on (this replica is a standby)."""
        with self._lock:
            self._token = None

    # --- connections -----------------------------------------------------------------------

    def _connection(self) -> tuple[psycopg.Connection[Any], bool]:
        """The open connection, reconnecting after a failure (with `self._lock` held); and
        whether it is one kept from an earlier call, which may have died since unnoticed
        (a database restart ends every session; nothing tells us until we send)."""
        if self._closed:
            raise StateError(f"state database {self.where} is closed")
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            self._conn = self._connector.connect(purpose="state")
            return self._conn, False
        return self._conn, True

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def _failure(self, exc: psycopg.Error) -> StateError:
        if isinstance(exc, psycopg.OperationalError):
            self._drop()  # the next call reconnects
        return StateError(f"state database {self.where}: {self._connector.safe(exc)}")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[tuple[psycopg.Connection[Any], tuple[str | None, int | None]]]:
        """A write transaction, fenced by the lease when `fenced`; with the (holder, epoch)
        it was fenced with."""
        with self._lock:
            if self._read_only:
                raise StateError(f"state database {self.where} is open read-only")
            token = self._token
            if self._fenced and token is None:
                raise NotLeader("this replica does not hold the leader lease: it writes nothing")
            try:
                while True:
                    conn, kept = self._connection()
                    begun = False
                    try:
                        with (
                            self._connector.answering(conn, f"state database {self.where}"),
                            conn.transaction(),
                        ):
                            begun = True
                            self._fence(conn, token)
                            yield conn, token or (None, None)
                            self._connector.restart_deadline(conn)  # the commit's own
                        break
                    except psycopg.OperationalError:
                        # A kept connection found dead by its `BEGIN`: nothing ran, so
                        # the transaction begins again once, on a new connection.
                        if begun or not kept or not conn.broken:
                            raise
                        self._drop()
            except StateError as exc:
                self._problem = str(exc)
                raise
            except psycopg.Error as exc:
                failure = self._failure(exc)
                self._problem = str(failure)
                raise failure from None
            self._problem = None

    def _fence(self, conn: psycopg.Connection[Any], token: tuple[str, int] | None) -> None:
        """Lock the lease row if `token` is its current, unexpired epoch; else `NotLeader`."""
        if not self._fenced or token is None:
            return
        if conn.execute(_FENCE, (self._idle_ms, LEASE, *token)).fetchone() is None:
            raise NotLeader(
                f"lease epoch {token[1]} of {token[0]} is no longer current "
                "(expired or taken over): nothing was written"
            )

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """One query's rows; sent again once on a new connection when a kept one turns out
        to have died meanwhile (a read changes nothing)."""
        with self._lock:
            while True:
                conn, kept = self._connection()
                try:
                    with self._connector.answering(conn, f"state database {self.where}"):
                        return conn.execute(sql, args).fetchall()
                except psycopg.Error as exc:
                    if not (kept and conn.broken):
                        raise self._failure(exc) from None
                    self._drop()

    # --- StateStore --------------------------------------------------------------------------

    def durability_problem(self) -> str | None:
        """None while writes succeed; else the error of the last one."""
        return self._problem

    def load(self, policy: str, target_key: str) -> Memory:
        """The memory of `policy`; `last_scaled_at` is the latest action on `target_key`."""
        rows = self._read(
            "SELECT m.recommendations, m.missing_data_streak, m.missing_data_since,"
            " (SELECT last_scaled_at FROM autoscaler_targets WHERE target_key = %s)"
            " FROM (SELECT 1) AS one LEFT JOIN autoscaler_memory AS m"
            " ON m.policy = %s AND m.target_key = %s",
            (target_key, policy, target_key),
        )
        recs_text, streak, since, last = rows[0]
        recommendations: tuple[Recommendation, ...] = ()
        if recs_text is not None:
            recommendations = tuple(
                Recommendation(at=schema.parse(at), count=int(count))
                for at, count in json.loads(recs_text)
            )
        return Memory(
            last_scaled_at=_utc(last),
            recommendations=recommendations,
            missing_data_streak=int(streak or 0),
            missing_data_since=_utc(since),
        )

    def save(self, policy: str, target_key: str, memory: Memory) -> None:
        """Persist `memory`; the target's last action only ever moves forward."""
        with self._tx() as (conn, _):
            _save_in(conn, policy, target_key, memory)

    def remember(self, policy: str, target_key: str, memory: Memory) -> None:
        """`save` at once (the layer in front batches); a failure is left to
        `durability_problem()`, except `NotLeader`, which the caller must hear."""
        try:
            self.save(policy, target_key, memory)
        except NotLeader:
            raise
        except StateError:
            return

    def write(self, memories: list[tuple[str, str, Memory]], decisions: list[Decision]) -> None:
        """`save` of each (policy, target key, memory) and `record` of each decision, all
        in one transaction fenced once by the lease, pruned once (group commit)."""
        with self._tx() as (conn, token):
            for policy, target_key, memory in memories:
                _save_in(conn, policy, target_key, memory)
            for decision in decisions:
                self._record_in(conn, token, decision)
            if decisions:
                self._prune(conn, max(d.time for d in decisions))

    def withdraw(self, target_key: str, *, at: datetime, previous: datetime | None) -> None:
        """Undo a last action saved at `at` that did not happen (unless a later one came)."""
        with self._tx() as (conn, _):
            if previous is None:
                conn.execute(
                    "DELETE FROM autoscaler_targets WHERE target_key = %s AND last_scaled_at = %s",
                    (target_key, at),
                )
            else:
                conn.execute(
                    "UPDATE autoscaler_targets SET last_scaled_at = %s"
                    " WHERE target_key = %s AND last_scaled_at = %s",
                    (previous, target_key, at),
                )

    def record(self, decision: Decision) -> None:
        """Append a decision to the history (once) and prune it by age and count."""
        with self._tx() as (conn, token):
            self._record_in(conn, token, decision)
            self._prune(conn, decision.time)

    @staticmethod
    def _record_in(
        conn: psycopg.Connection[Any], token: tuple[str | None, int | None], decision: Decision
    ) -> None:
        conn.execute(
            "INSERT INTO autoscaler_decisions (policy, time, payload, holder, epoch)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (policy, time) DO NOTHING",
            (decision.policy, decision.time, json.dumps(decision.to_dict()), *token),
        )

    def _prune(self, conn: psycopg.Connection[Any], newest: datetime) -> None:
        """Drop decisions older than `keep_for` before `newest`, and beyond `keep_decisions`."""
        conn.execute("DELETE FROM autoscaler_decisions WHERE time < %s", (newest - self._keep_for,))
        conn.execute(
            "DELETE FROM autoscaler_decisions WHERE id <="
            " (SELECT max(id) FROM autoscaler_decisions) - %s",
            (self._keep_decisions,),
        )

    def drop_removed(
        self, policies: Collection[str], targets: Collection[str], *, before: datetime
    ) -> schema.Dropped:
        """Delete the memory of every policy not in `policies` last written before `before`,
        and the last action of every target not in `targets` older than that (as
        `SqliteStateStore.drop_removed`); fenced by the lease like every write."""
        with self._tx() as (conn, _):
            gone = schema.removed(
                conn.execute(
                    "SELECT policy, updated_at FROM autoscaler_memory WHERE updated_at < %s",
                    (before,),
                ).fetchall(),
                policies,
                _utc_of,
            )
            old = [
                key
                for (key,) in conn.execute(
                    "SELECT target_key FROM autoscaler_targets WHERE last_scaled_at < %s",
                    (before,),
                ).fetchall()
                if key not in targets
            ]
            if gone:
                conn.execute(
                    "DELETE FROM autoscaler_memory WHERE policy = ANY(%s) AND updated_at < %s",
                    ([name for name, _ in gone], before),
                )
            if old:
                conn.execute(
                    "DELETE FROM autoscaler_targets"
                    " WHERE target_key = ANY(%s) AND last_scaled_at < %s",
                    (old, before),
                )
        return schema.Dropped(policies=gone, targets=len(old))

    def history(self, *, policy: str | None = None, limit: int = 100) -> list[Decision]:
        """Recorded decisions, newest first."""
        if policy is None:
            rows = self._read(
                "SELECT payload FROM autoscaler_decisions ORDER BY id DESC LIMIT %s",
                (max(0, limit),),
            )
        else:
            rows = self._read(
                "SELECT payload FROM autoscaler_decisions WHERE policy = %s"
                " ORDER BY id DESC LIMIT %s",
                (policy, max(0, limit)),
            )
        return [schema.decision_from_dict(json.loads(r[0])) for r in rows]

    @property
    def settings(self) -> PostgresSettings:
        return self._connector.settings

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()


def _utc(value: datetime | None) -> datetime | None:
    return _utc_of(value) if value is not None else None


def _utc_of(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _save_in(conn: psycopg.Connection[Any], policy: str, target_key: str, memory: Memory) -> None:
    """Upsert the policy's memory; the target's last action only ever moves forward."""
    recs = json.dumps([[schema.iso(r.at), r.count] for r in memory.recommendations])
    conn.execute(
        "INSERT INTO autoscaler_memory (policy, target_key, recommendations,"
        " missing_data_streak, missing_data_since, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (policy) DO UPDATE SET"
        " target_key = excluded.target_key,"
        " recommendations = excluded.recommendations,"
        " missing_data_streak = excluded.missing_data_streak,"
        " missing_data_since = excluded.missing_data_since,"
        " updated_at = excluded.updated_at",
        (policy, target_key, recs, memory.missing_data_streak, memory.missing_data_since),
    )
    if memory.last_scaled_at is not None:
        conn.execute(
            "INSERT INTO autoscaler_targets (target_key, last_scaled_at) VALUES (%s, %s)"
            " ON CONFLICT (target_key) DO UPDATE SET last_scaled_at ="
            " greatest(autoscaler_targets.last_scaled_at, excluded.last_scaled_at)",
            (target_key, memory.last_scaled_at),
        )
