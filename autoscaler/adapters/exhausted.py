"""Tells "the process ran out of a resource" apart from "the server is unreachable".

A connection that fails with EMFILE (too many open files) or ENOMEM is not a network
problem another attempt will fix within a deadline: retrying it only turns one clear
error into a long silent wait per target (`plan` of 2,000 targets at `ulimit -n 1024`
slept for hours). Each adapter asks `out_of_resources` before it classifies a failure
as transient, and reports this message instead.
"""

from __future__ import annotations

import errno
import re
import resource

__all__ = ["out_of_resources"]

_EXHAUSTED = {
    errno.EMFILE: "open files of the process",
    errno.ENFILE: "open files of the system",
    errno.ENOBUFS: "network buffer space",
    errno.ENOMEM: "memory",
}
# Libraries that wrap an OSError in a new exception often keep only its text.
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\]")
_MAX_DEPTH = 12


def out_of_resources(exc: BaseException) -> str | None:
    """A message naming the exhausted resource and the fix, or None if `exc` is not that.

    Looks through the exception's causes and context, the `reason`/`error` attributes
    and arguments that requests, urllib3, botocore and python-nomad wrap errors in, and
    at last the text, for an `OSError` whose errno is EMFILE, ENFILE, ENOBUFS or ENOMEM.
    """
    code = _errno_of(exc)
    if code is None:
        return None
    what = _EXHAUSTED[code]
    message = f"the process ran out of {what} ({errno.errorcode[code]}: opening a connection)"
    if code == errno.EMFILE:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        message += (
            f"; its open-files limit is {soft}: raise it (ulimit -n) or evaluate fewer "
            "policies at once (--workers)"
        )
    return message


def _errno_of(exc: BaseException) -> int | None:
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending and len(seen) < _MAX_DEPTH:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.errno in _EXHAUSTED:
            return item.errno
        pending.extend((item.__cause__, item.__context__, *item.args))
        pending.extend(getattr(item, name, None) for name in ("reason", "error", "nomad_resp"))
        kwargs = getattr(item, "kwargs", None)  # botocore keeps the wrapped error there
        if isinstance(kwargs, dict):
            pending.extend(kwargs.values())
    for match in _ERRNO_TEXT.finditer(str(exc)):
        if int(match.group(1)) in _EXHAUSTED:
            return int(match.group(1))
    return None
