"""Fault injectors for the state database and the disk, as an operator's bad day makes them.

Each is a context manager: the fault holds inside the block and is undone when it ends.

    locked_by_another_process(path)  another process holds the SQLite write lock
    read_only(path)                  the database and its WAL cannot be written, even by root
    disk_full(pid)                   the process may write no byte more to any file
    STALE                            the value that marks a series stale in Prometheus
"""

from __future__ import annotations

import os
import resource
import sqlite3
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Prometheus' staleness marker (value.StaleNaN): a sample with this NaN payload, pushed over
# remote write, ends its series for instant queries, as a scrape that lost the target would.
STALE: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


@contextmanager
def locked_by_another_process(path: Path) -> Iterator[None]:
    """Another connection holds the database's write lock (`BEGIN EXCLUSIVE`)."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def _chattr(flag: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chattr", flag, *map(str, paths)], capture_output=True, text=True, check=False
    )


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """The database and its WAL made unwritable, even for root (immutable where root).

    The shared-memory file stays writable: SQLite maps it, and a write to a mapping of an
    immutable file kills the process with SIGBUS, which is no state error to handle.
    Without root, the files are made read-only (which only affects files opened later).
    """
    # The WAL only while a database is open (closing it removes the file).
    files = [f for f in (path, path.with_name(path.name + "-wal")) if f.exists()]
    if os.geteuid() != 0:
        modes = [f.stat().st_mode for f in files]
        for f in files:
            f.chmod(0o444)
        try:
            yield
        finally:
            for f, mode in zip(files, modes, strict=True):
                f.chmod(mode)
        return
    made = _chattr("+i", *files)
    if made.returncode != 0:
        pytest.skip(f"cannot make files immutable here (chattr: {made.stderr.strip()})")
    try:
        yield
    finally:
        _chattr("-i", *files)


@contextmanager
def disk_full(pid: int) -> Iterator[None]:
    """Process `pid` may write no byte more to any file (EFBIG, as a full disk gives ENOSPC).

    Its log must not go to a file it writes itself (see `ServiceProcess(log_through_pipe=)`).
    """
    before = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, before[1]))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, before)
