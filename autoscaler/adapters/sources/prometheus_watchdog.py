"""A whole answer from Prometheus within one attempt's timeout, however slowly it comes.

requests' `timeout` bounds each wait for the socket, not the request: an answer whose body
arrives a few bytes at a time (a congested link, a proxy that trickles a large grouped
answer) never waits long enough at once to time out, and one attempt lasted as long as
the server took, whatever `--query-timeout` and the query's deadline said. `read_within`
reads the body under a deadline instead: a watchdog thread (`adapters.socket_watchdog`)
cuts the connection of a read still going when the attempt's timeout has passed since the
request was sent, and the attempt fails as a timeout (retried within the query's
deadline, as any other).
"""

from __future__ import annotations

import socket

import requests

from autoscaler.adapters.socket_watchdog import SocketWatchdog

__all__ = ["read_within"]

# Its own thread, apart from the state store's: each is named for what it watches.
_WATCHDOG = SocketWatchdog("prometheus-watchdog")


def read_within(response: requests.Response, timeout: object) -> None:
    """Read `response`'s body now, within `timeout` seconds (a number) of the request being
    sent (`response.elapsed` of it is gone); raise `requests.exceptions.ReadTimeout` when
    it is not complete by then. Nothing is bounded for another `timeout` (a tuple, None)
    or when the connection's socket cannot be reached."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if not isinstance(timeout, int | float) or not isinstance(sock, socket.socket):
        return
    watch = _WATCHDOG.arm(response, sock.fileno(), timeout - response.elapsed.total_seconds())
    try:
        response.content  # noqa: B018 (read here, watched, rather than later, unwatched)
    except Exception:
        if not _WATCHDOG.disarm(watch):
            raise
    else:
        if not _WATCHDOG.disarm(watch):
            return
    # Cut: even a read that ended without an error may be short (no Content-Length).
    raise requests.exceptions.ReadTimeout(
        f"the answer was not complete {timeout:.2g}s after the request was sent "
        "(its body came too slowly)"
    )
