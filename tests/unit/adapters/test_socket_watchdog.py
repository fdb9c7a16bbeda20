"""The socket watchdogs across a fork: a child never cuts its parent's sockets.

A watchdog cuts a connection by `shutdown()` on a duplicate of its socket, and a forked
child holds copies of every descriptor of its parent: shut down there, the parent's
connection ends too. Sockets of a socket pair stand in for the connections here (a
watchdog only ever touches the descriptor it is given); both of the process's watchdogs,
the state store's and the Prometheus source's, are held to it.
"""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

from autoscaler.adapters.socket_watchdog import SocketWatchdog
from autoscaler.adapters.sources.prometheus_watchdog import _WATCHDOG as PROMETHEUS
from autoscaler.adapters.state.pg import _WATCHDOG as POSTGRES


@pytest.mark.parametrize(
    "watchdog", [pytest.param(POSTGRES, id="postgres"), pytest.param(PROMETHEUS, id="prometheus")]
)
def test_a_forked_child_never_cuts_a_connection_of_its_parent(watchdog: SocketWatchdog) -> None:
    ours, server = socket.socketpair()
    watch = watchdog.arm(ours, ours.fileno(), 60.0)  # a call in flight at the fork
    pid = os.fork()
    if pid == 0:  # the child: its first call starts its own watchdog thread
        code = 1
        try:
            watch.deadline = 0.0  # as if the parent's call had been waiting for long
            mine, _peer = socket.socketpair()
            child = watchdog.arm(mine, mine.fileno(), 0.0)  # due at once: the thread runs
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
        assert not watchdog.disarm(watch)  # answered in time, here
        ours.sendall(b"?")  # the parent's connection still carries both ways
        assert server.recv(1) == b"?"
        server.sendall(b"!")
        assert ours.recv(1) == b"!"
    finally:
        watchdog.disarm(watch)
        ours.close()
        server.close()


def test_only_the_call_past_its_deadline_is_cut_and_its_owner_learns_so() -> None:
    watchdog = SocketWatchdog("test-watchdog")
    late, late_peer = socket.socketpair()
    on_time, on_time_peer = socket.socketpair()
    try:
        waiting = watchdog.arm(on_time, on_time.fileno(), 60.0)
        due = watchdog.arm(late, late.fileno(), 0.0)
        late.settimeout(5)
        assert late.recv(1) == b""  # the wait ends at once: the connection is shut down
        assert watchdog.disarm(due)
        assert not watchdog.disarm(waiting)
        on_time_peer.sendall(b"!")
        assert on_time.recv(1) == b"!"
    finally:
        for sock in (late, late_peer, on_time, on_time_peer):
            sock.close()
