"""`--listen HOST:PORT` read once for every user: the option's check, the server, the
exposure check and the container health check (which must stay light: the standard
library and our errors only).
"""

from __future__ import annotations

from autoscaler.errors import AutoscalerError

MAX_PORT = 65535


def listen_problem(listen: str) -> str | None:
    """What is wrong with `listen` as an address to listen on, saying what to write; None
    when nothing is. Checked when the options are read, so that a port the socket refuses
    (65536: OverflowError) is a usage error naming the flag, variable or key, not a crash."""
    _, sep, port = listen.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        return "write it as HOST:PORT, e.g. 127.0.0.1:8080"
    if int(port) > MAX_PORT:
        return f"the port must be from 0 to {MAX_PORT}, e.g. 127.0.0.1:8080"
    return None


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) -> (host, port)."""
    problem = listen_problem(listen)
    if problem is not None:
        raise AutoscalerError(f"--listen {listen!r}: {problem}")
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - only when asked for with ":PORT"
    return host, int(port)
