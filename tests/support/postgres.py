"""pytest plugin: a real PostgreSQL server (Debian's `postgresql` package) for the tests.

`PostgresServer` runs `initdb` and `postgres` from /usr/lib/postgresql/*/bin in a temp dir
on a free port of 127.0.0.1. The server refuses to run as root, and CI runs as root: there
it runs as the `postgres` user the package creates, in a dir that user owns. Connections
over TCP need a password (scram-sha-256), so tests exercise how the controller gets one.

`stop()` / `start()` restart the same cluster (its data survives): the "database restarted"
and "database unreachable" fault cases use that.

Fixtures: `postgres_server` (session, per xdist worker; shared, so each test takes its own
database with `postgres_db`), `make_postgres` (a private server a test may stop and start).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.support.net import free_port, wait_until

USER = "autoscaler"
PASSWORD = "pg-secret-5c1f0e"  # a test-only password; the tests look for it in logs


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: run scripts/bootstrap (apt-get install postgresql)"
        )
    return Path(found[-1]).parent


_TEMPLATE: Path | None = None


def _template(server: PostgresServer) -> Path:
    """A cluster made by `initdb` once per process, copied for each server (initdb takes
    seconds, a copy a fraction of one)."""
    global _TEMPLATE  # noqa: PLW0603 - one per test process, on purpose
    if _TEMPLATE is None or not _TEMPLATE.exists():
        root = Path(tempfile.mkdtemp(prefix="autoscaler-pg-template-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server.initdb(root / "data")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _TEMPLATE = root / "data"
    return _TEMPLATE


def _parent(pid: int) -> int:
    """The parent pid of process `pid` (OSError if there is none such)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


@dataclass(frozen=True)
class Database:
    """One database on a server: `dsn` carries no password (it comes from a file or env)."""

    server: PostgresServer
    name: str

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.server.port}/{self.name}"

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """A connection for the test itself (autocommit)."""
        return psycopg.connect(self.dsn, password=PASSWORD, autocommit=True, connect_timeout=5)

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with self.connect() as conn:
            return conn.execute(sql, args or None).fetchall()


class PostgresServer:
    """One PostgreSQL cluster in its own temp dir; `stop()` and `start()` keep its data."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="autoscaler-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.password_file = self.root / "password"
        self._as_root = os.geteuid() == 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.password_file.write_text(PASSWORD + "\n")
        if self._as_root:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            os.chown(self.password_file, entry.pw_uid, entry.pw_gid)
        self._run("cp", "-a", str(_template(self)), str(self.data))

    def initdb(self, data: Path) -> None:
        """A new cluster in `data` (the user `autoscaler`, its password `PASSWORD`)."""
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={self.password_file}",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_root else list(args)

    def _run(self, *args: str) -> None:
        done = subprocess.run(self._command(*args), capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{done.stdout.decode()}{done.stderr.decode()}")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (again) on the same port and wait until it takes connections."""
        if self.running:
            return
        log = (self.root / "postgres.log").open("ab")
        self._proc = subprocess.Popen(
            self._command(
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        proc = self._proc
        wait_until(
            lambda: proc.poll() is not None or self._accepts(),
            timeout=30,
            what=f"PostgreSQL on port {self.port}",
        )
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {proc.returncode}:\n{self.log_tail()}")

    def _accepts(self) -> bool:
        try:
            psycopg.connect(self.admin_dsn, password=PASSWORD, connect_timeout=1).close()
        except psycopg.OperationalError:
            return False
        return True

    def pid(self) -> int:
        """The postmaster's pid (from `postmaster.pid`)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are disconnected), and wait for the exit."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # The postmaster itself, not `runuser` in front of it (which would not pass it on);
        # but only if postmaster.pid names it: a stale file holds a pid the system may have
        # given to any process since (pid_max is 32768 on CI), this pytest worker included.
        with contextlib.suppress(OSError, ValueError):
            pid = self.pid()
            if proc.pid in (pid, _parent(pid)):
                os.kill(pid, signal.SIGINT)
            else:
                proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def database(self) -> Database:
        """A new, empty database on this server."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            self.admin_dsn, password=PASSWORD, autocommit=True, connect_timeout=5
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return Database(server=self, name=name)

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        """The server alive but answering nothing: the postmaster and the backends serving
        clients stopped (SIGSTOP), sockets open; continued when the block ends. Its own
        helper processes (checkpointer, ...) run on, as in a backend stuck on a query."""
        root = self.pid()
        pids = [root]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                if parent == root and b"127.0.0.1(" in (stat.parent / "cmdline").read_bytes():
                    pids.append(int(stat.parent.name))
        try:
            for pid in pids:  # inside: a backend that just ended leaves none of them stopped
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            yield
        finally:
            # `runuser` in front of the postmaster (as root) stops itself when its child
            # stops, as a shell would, and must be continued too or it never reaps it.
            wrapper = [self._proc.pid] if self._proc is not None else []
            for pid in [*pids, *wrapper]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.root / "postgres.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL per test worker; tests take their own database (`postgres_db`)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> Database:
    """A fresh database on the shared server."""
    return postgres_server.database()


@pytest.fixture
def make_postgres() -> Iterator[Callable[[], PostgresServer]]:
    """`make_postgres()`: a started server of the test's own, which it may stop and start."""
    servers: list[PostgresServer] = []

    def make() -> PostgresServer:
        server = PostgresServer()
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        with contextlib.suppress(Exception):
            server.destroy()
