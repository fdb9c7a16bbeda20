"""How much of its answers a connection's client has received: the measure behind the
send timeout and stalled connections (see `capacity`).

A client that reads nothing of an answer leaves it in the server's buffers: the kernel's
send queue (megabytes on loopback) and then the transport's. Progress is what the client
acknowledged: the bytes written to the transport (`Counting`) less those not yet received
(`unsent`). It grows whenever the client reads, however slowly, and new answers written
meanwhile do not move it; comparing buffer sizes did, and cut a keep-alive client that had
read one answer whole because the next one was as large.
"""

from __future__ import annotations

import asyncio
import fcntl
import sys
import termios
from typing import Any

# Linux's ioctl for the bytes in a socket's send queue (sent and not acknowledged, or not
# sent); None where the system has none.
_OUTQ: int | None = getattr(termios, "TIOCOUTQ", None)


class Counting:
    """A transport (what the protocol writes to), counting the bytes written to it; the
    rest is the transport's own."""

    __slots__ = ("_transport", "written")

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def unsent(transport: asyncio.WriteTransport) -> int:
    """Bytes written to `transport` that its client has not received: the transport's
    buffer, and the kernel's send queue where the system tells it (Linux's SIOCOUTQ).
    Elsewhere the transport's buffer alone: it still shrinks as the client reads, once the
    kernel's queue has room again, only later."""
    pending = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is None or _OUTQ is None:
        return pending
    try:
        queued = fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0")
    except OSError:  # not a socket the system tells of
        return pending
    return pending + int.from_bytes(queued, sys.byteorder, signed=True)


def delivered(transport: Counting) -> int:
    """Bytes of answers the client of `transport` has received so far."""
    return transport.written - unsent(transport)  # type: ignore[arg-type]
