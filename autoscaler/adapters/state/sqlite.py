"""Durable memory in SQLite: last scaling action per target, recommendations, decisions.

A restart must never double-scale inside a cooldown nor forget a stabilization window, so
everything the decision core remembers lives here, written in WAL mode after each
evaluation. One controller owns a state file at a time (an advisory lock says so); a file
that cannot be opened, read or locked is a startup error, never silent loss.

Writes to a file deleted or replaced under the running process would succeed and vanish
at the next restart, so every write first checks that the path is still the file that
was opened (device and inode). If not, the store recovers: a deleted file is recreated
from the still-open copy, a replaced one is adopted, and `generation` goes up so the
layer in front (`layered.LayeredStateStore`) writes back everything it remembers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from autoscaler.adapters.state import files, proof, schema
from autoscaler.core.model import Decision, Memory, Recommendation
from autoscaler.errors import StateError

_LOG = logging.getLogger(__name__)


class SqliteStateStore:
    """`ports.StateStore` on a SQLite file.

    `exclusive=True` (the `run` command) takes an advisory lock on `<path>.lock` so two
    controllers never act on the same memory. `read_only=True` (`plan`) opens an existing
    database with SQLite's read-only mode: no schema, no write lock, no checkpoint, so a
    preview can never disturb the running controller's file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        exclusive: bool = False,
        read_only: bool = False,
        keep_decisions: int = 10_000,
        keep_for: timedelta = timedelta(days=14),
    ) -> None:
        self.path = Path(path)
        self._keep_decisions = keep_decisions
        self._keep_for = keep_for
        self._lock = threading.Lock()
        self._lock_file: IO[str] | None = None
        self._exclusive = exclusive
        self._read_only = read_only
        self._since_column = "missing_data_since"
        self._opened: files.Opened | None = None
        self._problem: str | None = None
        self.generation = 0  # goes up each time a new file at the path is taken into use
        self._closed = False
        if read_only:
            self._db: sqlite3.Connection | None = self._open_read_only()
            return
        if exclusive:
            self._lock_file = self._take_lock()
        try:
            self._db = self._connect()
        except (sqlite3.Error, OSError) as exc:
            self._release_lock()
            raise StateError(
                f"cannot use state database {self.path}: {exc}; {proof.advice(exc, self.path)}"
            ) from exc
        proof.say_if_empty(self._db, self.path)

    def _connect(self) -> sqlite3.Connection:
        """A writable connection to the file at the path (created if need be), proven."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=2.0, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when it returns. Under WAL, NORMAL survives a crash
            # of the process but may roll the last commits back on a power loss or an OS
            # crash, and a scaling action's record (written before its scale call) must
            # survive both. Group commit keeps this to about one sync a second plus one
            # per scaling action.
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(schema.SCHEMA)
            schema.migrate(db)
            # Prove we can write, and that what we read is whole, now: not at the first
            # scaling action or read.
            proof.prove(db)
            self._opened = files.opened(self.path)
        except BaseException:
            db.close()
            raise
        return db

    def _open_read_only(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                check_same_thread=False,
                timeout=2.0,
                isolation_level=None,
            )
            db.execute("SELECT count(*) FROM memory").fetchone()
            db.execute("SELECT count(*) FROM targets").fetchone()
            columns = {row[1] for row in db.execute("PRAGMA table_info(memory)")}
            if "target_key" not in columns:
                raise sqlite3.OperationalError(
                    "it was written by the first version, which `autoscaler run` upgrades "
                    "when it opens it"
                )
            # An older file without the column: its streaks have no start time yet.
            self._since_column = "missing_data_since" if "missing_data_since" in columns else "NULL"
        except sqlite3.Error as exc:
            raise StateError(
                f"cannot read state database {self.path}: {exc}; point --state at the "
                "database of a running or past `autoscaler run`"
            ) from exc
        return db

    def _take_lock(self) -> IO[str]:
        lock_path = self._lock_path()
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = lock_path.open("a+")
        except OSError as exc:
            raise StateError(f"cannot create lock file {lock_path}: {exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StateError(
                f"state database {self.path} is in use by another autoscaler (pid {holder}); "
                "run one controller per state file, or pass a different --state"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def _lock_path(self) -> Path:
        """`<file>.lock` beside the file the path names: a symlink to the database (or
        another way to write its path) must not give a second controller a lock of its own."""
        try:
            real = self.path.resolve()
        except (OSError, RuntimeError):  # a symlink loop: SQLite cannot open it either
            real = self.path
        return real.with_name(real.name + ".lock")

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # --- the file under our feet -----------------------------------------------------------

    def _writable(self) -> sqlite3.Connection:
        """The connection to write with, after making sure it is the file at the path.

        Raises `StateError` when the path holds no usable database (and it cannot be
        recreated). Called with `self._lock` held.
        """
        if self._read_only or self._closed:
            raise StateError(f"state database {self.path} is open read-only or closed")
        if self._exclusive:
            self._keep_lock()
        if self._db is not None and self._opened is not None and self._opened.is_current():
            return self._db
        try:
            return self._recover()
        except (sqlite3.Error, OSError) as exc:
            raise StateError(
                f"state database {self.path} was deleted or replaced while running and "
                f"could not be taken into use again: {exc}; check the file and its folder "
                "(decisions are kept in memory meanwhile)"
            ) from exc

    def _recover(self) -> sqlite3.Connection:
        """Take the file at the path into use again: recreated from our copy, or adopted."""
        found = files.identity(self.path)
        how = "now writing to the file found there" if found else "created a new, empty one"
        if self._db is not None:
            if found is None:
                what = "deleted"
            elif self._opened is not None and found == self._opened.main:
                what = "left without its WAL file"
            else:
                what = "replaced by another file"
            _LOG.error(
                "state database %s was %s while this controller was running", self.path, what
            )
            if found is None:
                # Our connection still reads the deleted file: it is the best copy there is.
                copy = files.copy_beside(self._db, self.path)
                self._let_go()
                files.put_in_place(copy, self.path)
                how = "recreated it with the content it had"
            else:
                self._let_go()  # closing writes a deleted WAL's content into the file
                if what.startswith("left"):
                    how = "reopened it with the content it had"
        if self._exclusive:
            self._relock()  # first: another controller may have taken the new file
        self._db = self._connect()
        self.generation += 1
        _LOG.warning(
            "state database %s: %s; what this controller remembers is written back to it, "
            "so a restart keeps its cooldowns",
            self.path,
            how,
        )
        return self._db

    def _let_go(self) -> None:
        """Close the connection to the old file and remove its WAL files from the path,
        which would otherwise be replayed into the new file."""
        assert self._db is not None
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._db = None
        if self._opened is not None:
            self._opened.remove_leftovers()
        self._opened = None

    def _keep_lock(self) -> None:
        """Lock `<path>.lock` again when it was deleted or replaced (someone took it for a
        stale lock): a second controller could start on the file meanwhile. Raises
        `StateError` when one did and holds the new lock, so this one writes nothing and
        holds scale-in until it stops (called with `self._lock` held)."""
        handle = self._lock_file
        try:
            if handle is not None and files.same_file(handle.fileno(), self._lock_path()):
                return
        except OSError:
            return  # it cannot be examined (a folder without search permission): unchanged
        _LOG.error(
            "lock file %s of state database %s was deleted or replaced while this controller "
            "was running; taking it again",
            self._lock_path(),
            self.path,
        )
        self._swap_lock()

    def _relock(self) -> None:
        """Lock `<path>.lock` again if it went with the database (a deleted folder)."""
        handle = self._lock_file
        if handle is not None and files.same_file(handle.fileno(), self._lock_path()):
            return
        self._swap_lock()

    def _swap_lock(self) -> None:
        """Take the lock file found at `<path>.lock` now, then let the old one go."""
        fresh = self._take_lock()
        self._release_lock()
        self._lock_file = fresh

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                db = self._writable()
            except StateError as exc:
                self._problem = str(exc)
                raise
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                self._problem = f"state database {self.path}: {exc}"
                raise StateError(self._problem) from exc
            self._problem = None

    def _reader(self) -> sqlite3.Connection:
        """The connection to read with (called with `self._lock` held)."""
        if self._db is None:
            raise StateError(self._problem or f"state database {self.path} is not open")
        return self._db

    def durability_problem(self) -> str | None:
        """None while writes succeed; else the error of the last one."""
        return self._problem

    def load(self, policy: str, target_key: str) -> Memory:
        """The memory of `policy`; `last_scaled_at` is the latest action on `target_key`."""
        with self._lock:
            db = self._reader()
            try:
                # A policy pointed at another target starts afresh: its recommendations
                # and missing-data streak were about the old one.
                row = db.execute(
                    "SELECT recommendations, missing_data_streak,"  # noqa: S608 (a column name)
                    f" {self._since_column} FROM memory WHERE policy = ? AND target_key = ?",
                    (policy, target_key),
                ).fetchone()
                target = db.execute(
                    "SELECT last_scaled_at FROM targets WHERE target_key = ?", (target_key,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise StateError(f"state database {self.path}: {exc}") from exc
        recommendations: tuple[Recommendation, ...] = ()
        streak = 0
        since = None
        if row is not None:
            recommendations = tuple(
                Recommendation(at=schema.parse(at), count=int(count))
                for at, count in json.loads(row[0])
            )
            streak = int(row[1])
            since = schema.parse(row[2]) if row[2] else None
        return Memory(
            last_scaled_at=schema.parse(target[0]) if target else None,
            recommendations=recommendations,
            missing_data_streak=streak,
            missing_data_since=since,
        )

    def save(self, policy: str, target_key: str, memory: Memory) -> None:
        """Persist `memory`; the target's last action only ever moves forward."""
        now = schema.iso(datetime.now(UTC))
        with self._tx() as db:
            self._save_in(db, policy, target_key, memory, now)

    @staticmethod
    def _save_in(
        db: sqlite3.Connection, policy: str, target_key: str, memory: Memory, now: str
    ) -> None:
        recs = json.dumps([[schema.iso(r.at), r.count] for r in memory.recommendations])
        since = schema.iso(memory.missing_data_since) if memory.missing_data_since else None
        db.execute(
            "INSERT INTO memory (policy, target_key, recommendations,"
            " missing_data_streak, missing_data_since, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(policy) DO UPDATE SET"
            " target_key = excluded.target_key,"
            " recommendations = excluded.recommendations,"
            " missing_data_streak = excluded.missing_data_streak,"
            " missing_data_since = excluded.missing_data_since,"
            " updated_at = excluded.updated_at",
            (policy, target_key, recs, memory.missing_data_streak, since, now),
        )
        if memory.last_scaled_at is not None:
            db.execute(
                "INSERT INTO targets (target_key, last_scaled_at) VALUES (?, ?)"
                " ON CONFLICT(target_key) DO UPDATE SET last_scaled_at ="
                " max(targets.last_scaled_at, excluded.last_scaled_at)",
                (target_key, schema.iso(memory.last_scaled_at)),
            )

    def remember(self, policy: str, target_key: str, memory: Memory) -> None:
        """`save` at once; a failure is left to `durability_problem()` to report."""
        with contextlib.suppress(StateError):
            self.save(policy, target_key, memory)

    def write(self, memories: list[tuple[str, str, Memory]], decisions: list[Decision]) -> None:
        """`save` of each (policy, target key, memory) and `record` of each decision, all
        in one transaction (one commit instead of one per evaluation), pruned once."""
        now = schema.iso(datetime.now(UTC))
        with self._tx() as db:
            for policy, target_key, memory in memories:
                self._save_in(db, policy, target_key, memory, now)
            for decision in decisions:
                db.execute(
                    "INSERT INTO decisions (policy, time, payload) VALUES (?, ?, ?)",
                    (decision.policy, schema.iso(decision.time), json.dumps(decision.to_dict())),
                )
            if decisions:
                self._prune(db, max(d.time for d in decisions))

    def withdraw(self, target_key: str, *, at: datetime, previous: datetime | None) -> None:
        """Undo a last action saved at `at` that did not happen (unless a later one came)."""
        with self._tx() as db:
            if previous is None:
                db.execute(
                    "DELETE FROM targets WHERE target_key = ? AND last_scaled_at = ?",
                    (target_key, schema.iso(at)),
                )
            else:
                db.execute(
                    "UPDATE targets SET last_scaled_at = ?"
                    " WHERE target_key = ? AND last_scaled_at = ?",
                    (schema.iso(previous), target_key, schema.iso(at)),
                )

    def record(self, decision: Decision) -> None:
        """Append a decision to the history and prune it by age and count."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO decisions (policy, time, payload) VALUES (?, ?, ?)",
                (decision.policy, schema.iso(decision.time), json.dumps(decision.to_dict())),
            )
            self._prune(db, decision.time)

    def _prune(self, db: sqlite3.Connection, newest: datetime) -> None:
        """Drop decisions older than `keep_for` before `newest`, and beyond `keep_decisions`."""
        db.execute("DELETE FROM decisions WHERE time < ?", (schema.iso(newest - self._keep_for),))
        db.execute(
            "DELETE FROM decisions WHERE id <= (SELECT max(id) FROM decisions) - ?",
            (self._keep_decisions,),
        )

    def drop_removed(
        self, policies: Collection[str], targets: Collection[str], *, before: datetime
    ) -> schema.Dropped:
        """Delete the memory of every policy not in `policies` last written before `before`,
        and the last action of every target not in `targets` older than that: what a
        policy removed that long ago would find if it came back is past every window it
        served (see `service.retention`). Loaded policies keep theirs, however old."""
        cutoff = schema.iso(before)
        with self._tx() as db:
            gone = schema.removed(
                db.execute(
                    "SELECT policy, updated_at FROM memory WHERE updated_at < ?", (cutoff,)
                ).fetchall(),
                policies,
                schema.parse,
            )
            old = [  # keys only: their times are not returned
                key
                for (key,) in db.execute(
                    "SELECT target_key FROM targets WHERE last_scaled_at < ?", (cutoff,)
                ).fetchall()
                if key not in targets
            ]
            db.executemany(
                "DELETE FROM memory WHERE policy = ? AND updated_at < ?",
                [(name, cutoff) for name, _ in gone],
            )
            db.executemany(
                "DELETE FROM targets WHERE target_key = ? AND last_scaled_at < ?",
                [(key, cutoff) for key in old],
            )
        return schema.Dropped(policies=gone, targets=len(old))

    def history(self, *, policy: str | None = None, limit: int = 100) -> list[Decision]:
        """Recorded decisions, newest first."""
        sql = "SELECT payload FROM decisions"
        args: tuple[Any, ...] = ()
        if policy is not None:
            sql += " WHERE policy = ?"
            args = (policy,)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            db = self._reader()
            try:
                rows = db.execute(sql, (*args, max(0, limit))).fetchall()
            except sqlite3.Error as exc:
                raise StateError(f"state database {self.path}: {exc}") from exc
        return [schema.decision_from_dict(json.loads(r[0])) for r in rows]

    def close(self) -> None:
        """Checkpoint and close the database, then release the lock.

        A file deleted or replaced since the last write is taken into use again first,
        so what was written last survives the restart.
        """
        with self._lock:
            if self._closed:
                return
            if not self._read_only:
                try:
                    self._writable()
                except StateError as exc:
                    _LOG.error("closing the state database: %s", exc)
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    if not self._read_only:
                        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    self._db.close()
                self._db = None
            self._closed = True
        self._release_lock()
