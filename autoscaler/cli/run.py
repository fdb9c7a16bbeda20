"""`autoscaler run`: the long-lived service, or one pass with `--once`; its checks before
start (the policy paths, the state database) and the state it acts on, with PostgreSQL
the lease that says when it may.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from autoscaler.cli.exits import EXIT_OK, EXIT_STARTUP, print_error
from autoscaler.config.connections import Settings
from autoscaler.config.service import replica_id, service_config_from_args
from autoscaler.config.state import is_postgres, open_postgres_state
from autoscaler.errors import AutoscalerError, StateError, StateUnreachable
from autoscaler.policy.files import from_where

if TYPE_CHECKING:
    from autoscaler.adapters.state import LayeredStateStore
    from autoscaler.adapters.state.postgres import PostgresStateStore
    from autoscaler.service.leadership import Leadership

log = logging.getLogger("autoscaler.state")

# How long `run` on SQLite lets a decision that scales nothing wait for its write, so that
# many are written in one commit (see `LayeredStateStore`; a scale always waits for its write).
STATE_LINGER = 1.0
# While its PostgreSQL state cannot be reached at startup, the service tries again after a
# pause that doubles from the first to the longest (seconds).
REACH_FIRST_PAUSE = 0.5
REACH_LONGEST_PAUSE = 10.0


class _Stopped(BaseException):
    """SIGTERM/SIGINT while the service waited for its state database: a clean stop (0).
    Raised by the signal handler, like KeyboardInterrupt, so that it also ends a connection
    attempt under way, and nothing on its way takes it for a failure to handle."""


def exists(path: str, what: str = "state database") -> bool:
    """Whether `path` exists; `StateError` when a folder on the way cannot be entered
    (`Path.exists` raised PermissionError: a traceback, exit 1, where a start-up problem is
    exit 4 with one line; systemd's DynamicUser keeps its state under a root-only folder)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise StateError(
            f"cannot reach the {what} {path}: {exc.strerror or exc} (check the "
            "permissions of the folders on its path for this user)"
        ) from None
    return True


def _ignore_reloads_for_now() -> None:
    if hasattr(signal, "SIGHUP"):
        with contextlib.suppress(ValueError):  # not the main thread (tests): nothing to do
            signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _readable(path: Path) -> bool:
    """Whether the controller can read `path`: a file, or a folder it can list."""
    if path.is_dir():
        return os.access(path, os.R_OK | os.X_OK)
    return os.access(path, os.R_OK)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """`autoscaler run`: the long-lived service, or a single pass with `--once`."""
    # Imported here: FastAPI and uvicorn cost ~0.6 s that validate/plan/schema never need.
    from autoscaler.service.run import run_once, run_service  # noqa: PLC0415

    # Until the service's own handler is in place (after imports, the state, the lease):
    # a reload signal then is not the end of the process (systemd takes death by SIGHUP
    # for a clean exit, and would not restart it).
    _ignore_reloads_for_now()
    try:
        missing = [p for p in args.paths if not exists(p, "policy file or folder")]
    except StateError as exc:  # a folder on the way the controller may not enter
        print_error(exc)
        return EXIT_STARTUP
    if missing:
        # A typo in the path would otherwise run a controller with nothing to do.
        print_error(f"no such policy file or folder: {', '.join(missing)}{from_where(missing)}")
        return EXIT_STARTUP
    unreadable = [p for p in args.paths if not _readable(Path(p))]
    if unreadable:
        print_error(
            f"cannot read the policy file or folder {', '.join(unreadable)}: check its "
            "permissions for the user the controller runs as"
        )
        return EXIT_STARTUP
    try:
        state, leadership = _open_run_state(args)
    except (StateError, AutoscalerError) as exc:
        print_error(exc)
        return EXIT_STARTUP
    except _Stopped:
        log.info("stopped while waiting for the state database")
        return EXIT_OK
    try:
        config = service_config_from_args(args)  # the notify URLs checked for --once too
        if args.once:
            return run_once(
                args.paths,
                settings,
                state,
                dry_run=args.dry_run,
                leadership=leadership,
                log_unchanged=args.log_decisions == "all",
                notify_urls=config.notify_urls,
                scale_up_unrecorded=config.scale_up_unrecorded,
            )
        return run_service(config, settings, state, leadership=leadership)
    except AutoscalerError as exc:
        print_error(exc)
        return EXIT_STARTUP
    finally:
        state.close()
        if leadership is not None:
            leadership.close()


def _open_run_state(args: argparse.Namespace) -> tuple[LayeredStateStore, Leadership | None]:
    """The state `run` acts on, and with PostgreSQL the lease that says when it may.

    SQLite: one controller per file (an advisory lock). PostgreSQL: one leader per
    database; without `--ha`, a second controller is refused (after waiting up to the TTL
    for a crashed one's lease to lapse); with `--ha`, it starts as a standby.
    """
    from autoscaler.adapters.state import LayeredStateStore, SqliteStateStore  # noqa: PLC0415

    keep_for = timedelta(days=args.history_days)
    keep = args.history_max
    if not is_postgres(args.state):
        # Memory in front of the file: a write that fails never makes the controller forget.
        durable = SqliteStateStore(
            args.state, exclusive=True, keep_for=keep_for, keep_decisions=keep
        )
        # `--once` waits for every write: its exit code says whether its pass was recorded.
        linger = 0.0 if args.once else STATE_LINGER
        return LayeredStateStore(durable, linger=linger), None
    pg = _reach_postgres(args, keep_for=keep_for, keep_decisions=keep)
    from autoscaler.service.leadership import replicate  # noqa: PLC0415 - psycopg

    # No lingering: a replica that loses its lease drops what it has not written, and with
    # PostgreSQL every decision a replica logs is in the shared history (`--ha` relies on it).
    state = LayeredStateStore(pg)
    state.standby()  # until this replica holds the lease
    leadership = replicate(pg, state, replica=replica_id(args), ttl=args.lease_ttl, ha=args.ha)
    try:
        if args.once or not args.ha:
            leadership.take_exclusively(one_off=args.once)
    except StateError:
        state.close()
        leadership.close()
        raise
    return state, leadership


def _reach_postgres(
    args: argparse.Namespace, *, keep_for: timedelta, keep_decisions: int
) -> PostgresStateStore:
    """`run`'s PostgreSQL store, connected and migrated. The service waits for a server
    that cannot be reached yet (refused, timed out, starting up: `StateUnreachable`), as
    replicas and their database often boot together: a warning, another try after a
    pause, until it answers or SIGTERM/SIGINT ends the wait (`_Stopped`). Any other
    problem (a wrong password, user or database name, a newer schema) raises at once, and
    so does every problem of a single pass (`--once`: its caller decides about retrying).
    """

    def attempt() -> PostgresStateStore:
        return open_postgres_state(
            args.state, args.state_password_file, keep_for=keep_for, keep_decisions=keep_decisions
        )

    if args.once:
        return attempt()
    started = time.monotonic()
    pause = REACH_FIRST_PAUSE
    with _stopped_by_signals():
        while True:
            try:
                store = attempt()
            except StateUnreachable as exc:
                log.warning(
                    "%s; waiting for it (the HTTP API starts once it answers), next try in "
                    "%g s; SIGTERM stops the controller",
                    exc,
                    pause,
                )
            else:
                if pause > REACH_FIRST_PAUSE:
                    waited = time.monotonic() - started
                    log.warning("state database %s reached after %.0f s", store.where, waited)
                return store
            time.sleep(pause)
            pause = min(pause * 2, REACH_LONGEST_PAUSE)


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise `_Stopped` while the block runs (the handlers before are
    back after it); outside the main thread, where no handler can be set, nothing changes."""

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s while waiting for the state database", signal.Signals(signum).name)
        raise _Stopped

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
