"""Read many policy files on several cores: what `validate` and `plan` do with 10,000 files.

Reading a file (YAML, schema, rules) costs about 0.13 ms of one core, so 10,000 files took
1.3 s of `validate`'s 1.8 s on one core while the other stayed idle. `map_files` forks
worker processes that each read a contiguous share of the files while this process reads
the first share, and takes their results back through a pipe (pickled), in the files'
order: the result is what reading them one by one gives.

Only a command that has not started any thread should use workers (a fork copies one
thread); the long-lived service reads its files one by one (`service.registry`). Any
failure of a worker (it could not fork, died, sent something unreadable) costs only time:
its share is read again here, one file after the other.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = ["PARALLEL_FROM", "default_workers", "map_files"]

T = TypeVar("T")

# Below this many files a second process saves a few hundredths of a second at best (a
# fork takes 2 ms here, and the results are pickled there and unpickled here).
PARALLEL_FROM = 1000
# More than this many processes gain little: the results come back through one process.
MAX_WORKERS = 4


def default_workers() -> int:
    """The processes to read files with: the cores this process may run on, at most 4;
    1 but on Linux (macOS forbids using some of its system libraries after a `fork`, and
    Windows has none)."""
    if not sys.platform.startswith("linux"):
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


def map_files(
    read: Callable[[Path], T], kind: type[T], paths: Sequence[Path], *, workers: int = 1
) -> list[T]:
    """`read(path)` for each path, in order, by up to `workers` processes.

    `read` must never raise (a worker that fails has its share read again here); `kind`
    is the type of what it returns, checked on what a worker sends back.
    """
    if workers < 2 or len(paths) < PARALLEL_FROM or not hasattr(os, "fork"):
        return [read(path) for path in paths]
    shares = _shares(len(paths), workers)
    children = [_spawn(read, paths[start:end]) for start, end in shares[1:]]
    done = 0
    try:
        start, end = shares[0]
        results = [read(path) for path in paths[start:end]]
        for (start, end), child in zip(shares[1:], children, strict=True):
            got = None if child is None else _collect(*child, kind, end - start)
            done += 1
            results += got if got is not None else [read(path) for path in paths[start:end]]
    finally:  # interrupted: no worker left behind
        for child in children[done:]:
            if child is not None:
                _abandon(*child)
    return results


def _shares(count: int, workers: int) -> list[tuple[int, int]]:
    """`workers` contiguous [start, end) shares of `count` files, of equal size: this
    process reads the first, a worker each other one. (This process also unpickles what
    the workers send, 0.025 ms a file, but a worker reads a little slower, writing to the
    pages it shares with this process: giving this process less or more gained nothing
    measurable at 10,000 files.)"""
    bounds = [round(count * k / workers) for k in range(workers + 1)]
    return list(itertools.pairwise(bounds))


def _spawn(read: Callable[[Path], T], paths: Sequence[Path]) -> tuple[int, int] | None:
    """A forked worker reading `paths` and writing the pickled results to a pipe: (pid,
    read end of the pipe), or None when it could not be started."""
    try:
        inlet, outlet = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(inlet)
        os.close(outlet)
        return None
    if pid == 0:  # the worker: never returns
        code = 1
        try:
            os.close(inlet)
            gc.freeze()  # never traverse what the fork inherited: fewer pages copied
            data = pickle.dumps([read(path) for path in paths], pickle.HIGHEST_PROTOCOL)
            with os.fdopen(outlet, "wb") as out:
                out.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(outlet)
    return pid, inlet


def _abandon(pid: int, inlet: int) -> None:
    """Stop a worker whose result is no longer wanted, and reap it."""
    with contextlib.suppress(OSError):  # already closed, when collecting it was interrupted
        os.close(inlet)
    with contextlib.suppress(OSError):  # already reaped
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _collect(pid: int, inlet: int, kind: type[T], count: int) -> list[T] | None:
    """The `count` results a worker sent, or None when it failed (its share is then read
    again)."""
    with os.fdopen(inlet, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return None
    try:
        results = pickle.loads(data)  # noqa: S301 - our own child's output, through our pipe
    except Exception:
        return None
    if not isinstance(results, list) or len(results) != count:
        return None
    if not all(isinstance(x, kind) for x in results):
        return None
    return results
