"""`--listen HOST:PORT` read once for every user: the server, the exposure check and the
container health check (which must stay light: the standard library and our errors only).
"""

from __future__ import annotations

from autoscaler.errors import AutoscalerError


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise AutoscalerError(f"--listen {listen!r}: write it as HOST:PORT, e.g. 127.0.0.1:8080")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - only when asked for with ":PORT"
    return host, int(port)
