"""Whether a SQLite state file is fit to act on, and what to tell the operator when not.

`run` records each scaling action in its state file before the scale call, and acts on
the memory it reads there. A file it cannot write (owned by another user, left read-only
by a restore, immutable, on a read-only mount) opens without an error, as SQLite falls
back to reading it; a damaged one opens as long as its first page is whole. Both were
found only at the first write or read: the service then ran with every scale-in held (and
scale-ups unrecorded), or held every policy for good. `prove` makes both a startup error,
and `advice` says in the error what to do about each kind of failure. `say_if_empty`
logs a file that holds no memory at all, which a restart that forgot everything shows.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

_LOG = logging.getLogger(__name__)

# How many problems the integrity check reports (the first is enough to say it is damaged).
_PROBLEMS = 3


class Damaged(sqlite3.DatabaseError):
    """The integrity check found the file damaged (its tables or indexes)."""


def prove(db: sqlite3.Connection) -> None:
    """Return when `db` takes writes and its content is whole; else raise `sqlite3.Error`
    (`Damaged` when the integrity check fails).

    The write proof writes nothing (a full disk is a runtime fault, held and retried, not a
    startup error); `BEGIN IMMEDIATE` alone succeeds on a file opened read-only, so it
    runs a statement that needs the write lock. The check is SQLite's `quick_check`: every
    page of the file read once (about 0.1 s for 100 MB of history).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("UPDATE targets SET last_scaled_at = last_scaled_at WHERE 0")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    found = [row[0] for row in db.execute(f"PRAGMA quick_check({_PROBLEMS})")]
    if found != ["ok"]:
        raise Damaged("integrity check failed: " + "; ".join(map(str, found)))


def advice(exc: BaseException, path: Path) -> str:
    """What the operator should check or do about `exc`, met opening the state file `path`."""
    name = getattr(exc, "sqlite_errorname", "")
    beside = f"{path.name}-wal and {path.name}-shm"
    if name.startswith("SQLITE_READONLY") or isinstance(exc, PermissionError):
        return (
            "the file cannot be written by this process: the controller's user must write "
            f"the file, its folder (SQLite creates {beside} there) and those two files if "
            "present; check their owner and mode, an immutable flag (lsattr), and that the "
            "file system is not mounted read-only"
        )
    if isinstance(exc, Damaged) or name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return (
            "the file is damaged, or is not a state database: check that --state names the "
            "controller's state file; restore it from a backup, or move it aside (with "
            f"{beside}) to start afresh without its recorded cooldowns and stabilization "
            "windows"
        )
    if name.startswith("SQLITE_CANTOPEN"):
        return (
            "check that the path names a file, not a folder, that the controller's user may "
            f"read and write it, and create files in its folder (SQLite keeps {beside} there)"
        )
    if name.startswith("SQLITE_FULL"):
        return "its disk is full: free space on it"
    return (
        "check that the file is a SQLite database, that its folder is writable, and that no "
        "other process holds a lock on it"
    )


def say_if_empty(db: sqlite3.Connection, path: Path) -> None:
    """Warn when the file holds no scaling action and no policy's memory: a new file,
    or the wrong one (a volume not mounted, a changed path), so every cooldown and
    stabilization window starts afresh. A restart that forgot them should say so."""
    held = db.execute(
        "SELECT EXISTS (SELECT 1 FROM targets) OR EXISTS (SELECT 1 FROM memory)"
    ).fetchone()[0]
    if not held:
        _LOG.warning(
            "state database %s holds no scaling action and no policy's memory (a new "
            "file): cooldowns and stabilization windows start afresh; if a controller "
            "ran before, check that --state names its file (a volume not mounted?)",
            path,
        )
