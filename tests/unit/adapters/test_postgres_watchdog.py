"""The PostgreSQL answer watchdog across a fork: a child never cuts its parent's sockets.

The watchdog cuts a connection by `shutdown()` on a duplicate of its socket, and a forked
child holds copies of every descriptor of its parent: shut down there, the parent's
connection ends too. Sockets of a socket pair stand in for the connections here (the
watchdog only ever touches `conn.pgconn.socket`).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from types import SimpleNamespace
from typing import Any

from autoscaler.adapters.state.pg import _WATCHDOG


def connection_on(sock: socket.socket) -> Any:
    """What the watchdog reads of a psycopg connection: its socket's descriptor."""
    return SimpleNamespace(pgconn=SimpleNamespace(socket=sock.fileno()))


def test_a_forked_child_never_cuts_a_connection_of_its_parent() -> None:
    ours, server = socket.socketpair()
    watch = _WATCHDOG.arm(connection_on(ours), 60.0)  # a statement in flight at the fork
    pid = os.fork()
    if pid == 0:  # the child: its first statement starts its own watchdog thread
        code = 1
        try:
            watch.deadline = 0.0  # as if the parent's statement had been waiting for long
            mine, _peer = socket.socketpair()
            child = _WATCHDOG.arm(connection_on(mine), 0.0)  # due at once: the thread runs
            give_up = time.monotonic() + 5
            while not child.fired and time.monotonic() < give_up:
                time.sleep(0.001)
            code = 0 if child.fired else 2
        finally:
            sys.stdout.flush()
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not _WATCHDOG.disarm(watch)  # answered in time, here
        ours.sendall(b"?")  # the parent's connection still carries both ways
        assert server.recv(1) == b"?"
        server.sendall(b"!")
        assert ours.recv(1) == b"!"
    finally:
        _WATCHDOG.disarm(watch)
        ours.close()
        server.close()
