"""Which file a path names, and how to put a SQLite database back at its path.

An open SQLite connection keeps reading and writing a file that was deleted or replaced
under it, and nothing fails until the next restart finds the cooldowns gone. These helpers
let the state store notice (device and inode of the path against those it opened) and
recover without mixing the old file's WAL into a new one, which SQLite would replay as if
it belonged there.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

# The files SQLite keeps beside a database in WAL mode.
_BESIDE = ("-wal", "-shm")

Identity = tuple[int, int]  # (st_dev, st_ino)


def identity(path: Path) -> Identity | None:
    """The device and inode `path` names now, or None when nothing is there."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_dev, st.st_ino)


@dataclass(frozen=True)
class Opened:
    """The files of a database as they were when it was opened."""

    path: Path
    main: Identity | None
    beside: tuple[tuple[Path, Identity | None], ...]

    def is_current(self) -> bool:
        """True while the path still names the file that was opened, and its WAL file.

        A path that cannot be examined (a folder without search permission) counts as
        current: nothing says it changed.
        """
        wal_path, wal = self.beside[0]
        try:
            return identity(self.path) == self.main and (wal is None or identity(wal_path) == wal)
        except OSError:
            return True

    def remove_leftovers(self) -> None:
        """Delete the WAL and shared-memory files of the opened database, if still there."""
        for path, ident in self.beside:
            if ident is not None and identity(path) == ident:
                with contextlib.suppress(OSError):
                    path.unlink()


def opened(path: Path) -> Opened:
    """What `path` and its WAL files are now (call right after opening the database)."""
    beside = tuple((_beside(path, suffix), identity(_beside(path, suffix))) for suffix in _BESIDE)
    return Opened(path=path, main=identity(path), beside=beside)


def same_file(fd: int, path: Path) -> bool:
    """True when the open file `fd` is the one `path` names."""
    st = os.fstat(fd)
    return identity(path) == (st.st_dev, st.st_ino)


def copy_beside(db: sqlite3.Connection, path: Path) -> Path:
    """A complete single-file copy of `db`, next to `path` (so it can be linked there).

    Raises `sqlite3.Error` or `OSError` when it cannot be written (a full disk).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    copy = path.with_name(f"{path.name}.recover-{os.getpid()}")
    _remove(copy)
    target = sqlite3.connect(copy, isolation_level=None)
    try:
        db.backup(target)
        # The copy inherits WAL mode; a rollback journal keeps it one file until it is used.
        target.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        target.close()
        _remove(copy)
        raise
    target.close()
    return copy


def put_in_place(copy: Path, path: Path) -> None:
    """Give `copy` the name `path`, unless a file appeared there meanwhile (it then wins).

    WAL files left at `path` by the deleted database are removed first: opening the copy
    with them would replay another file's pages into it.
    """
    try:
        if identity(path) is None:
            for suffix in _BESIDE:
                _remove(_beside(path, suffix))
            with contextlib.suppress(FileExistsError):
                os.link(copy, path)
    finally:
        _remove(copy)


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _remove(path: Path) -> None:
    for each in (path, _beside(path, "-journal")):
        with contextlib.suppress(FileNotFoundError):
            each.unlink()
