"""One `DescribeAutoScalingGroups` call for many groups read at the same time.

Every ASG target reads its group on each status (and before each scale). When several
targets of one region read at once (the service's workers), `GroupReads` sends their names
together, up to the API's 50 names per call, the way a database commits a group: the
first reader sends its call at once (a reader alone never waits for company); readers
that arrive while a call is in flight gather into the next call, sent as soon as that one
lands. Every name in a call was asked for before the call was sent, so no reader gets an
answer older than its question: counts are never stale.

Failures are the call's: every reader of a failed call gets its exception, and retries
(the callers' own, each within its deadline) gather again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["MAX_NAMES", "GroupReads"]

MAX_NAMES = 50  # DescribeAutoScalingGroups accepts up to 50 AutoScalingGroupNames

_G = TypeVar("_G")


@dataclass(eq=False)
class _Call(Generic[_G]):
    names: set[str] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)
    groups: dict[str, _G] = field(default_factory=dict)
    error: BaseException | None = None


class GroupReads(Generic[_G]):
    """Reads groups by name through `describe(names) -> groups`, many names per call.

    `name_of(group)` gives a returned group's name. Thread-safe; one per client.
    """

    def __init__(
        self, describe: Callable[[Sequence[str]], Sequence[_G]], name_of: Callable[[_G], str]
    ) -> None:
        self._describe = describe
        self._name_of = name_of
        self._lock = threading.Condition()
        self._in_flight = False
        self._gathering: _Call[_G] | None = None  # the next call, still taking names
        self._waiting = 0  # names in calls not sent yet
        self.calls = 0  # calls sent (for telemetry and tests)

    @property
    def gathering(self) -> int:
        """Names waiting for a call to carry them (while another is in flight)."""
        with self._lock:
            return self._waiting

    def read(self, name: str) -> _G | None:
        """The group called `name` as the service answers now, or None if there is none.

        Raises whatever `describe` raised for the call that carried `name`.
        """
        with self._lock:
            call = self._gathering
            sender = call is None or len(call.names) >= MAX_NAMES
            if sender:
                call = self._gathering = _Call()
            assert call is not None
            call.names.add(name)
            self._waiting += 1
            if sender:
                while self._in_flight:  # the call before ours must land first
                    self._lock.wait()
                if self._gathering is call:
                    self._gathering = None  # closed: later readers gather into the next
                self._in_flight = True
                self._waiting -= len(call.names)
                self.calls += 1
        if sender:
            self._send(call)
        else:
            call.done.wait()
        if call.error is not None:
            raise call.error
        return call.groups.get(name)

    def _send(self, call: _Call[_G]) -> None:
        try:
            found = self._describe(sorted(call.names))
            call.groups = {self._name_of(g): g for g in found}
        except BaseException as exc:
            call.error = exc
        finally:
            with self._lock:
                self._in_flight = False
                self._lock.notify_all()
            call.done.set()
