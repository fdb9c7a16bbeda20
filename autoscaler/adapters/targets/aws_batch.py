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

A call also carries, up to its 50 names, the groups of other targets that will be read
soon (`know`: the targets of this client; those read least recently first), and keeps
their answers for `FRESH` seconds. With the service's few workers a call otherwise
carries as many names as there are evaluations in flight (4 by default): 1,000 groups on
a 10 s interval took about 25 calls a second, and now take 2. A read answered that way
gets an answer at most `FRESH` seconds older than its question, never one older than an
answer it (or another reader) already had, and `read(fresh=True)` (before a scale call)
never gets one. The names of a call AWS refused (an error that is not transient, as
`transient` says: throttling and 5xx are) ride along again only once a call of their own
readers succeeded, so a name AWS refuses takes other targets' reads down with it once,
not at every interval; a throttled call keeps the batching as it was.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["FORGET", "FRESH", "MAX_NAMES", "GroupReads"]

MAX_NAMES = 50  # DescribeAutoScalingGroups accepts up to 50 AutoScalingGroupNames
FRESH = 2.0  # seconds a group fetched along with others' may answer a read of it
FORGET = 3600.0  # a group nobody read for this long is no longer fetched along

_G = TypeVar("_G")


@dataclass(eq=False)
class _Call(Generic[_G]):
    names: set[str] = field(default_factory=set)
    along: list[str] = field(default_factory=list)  # fetched for later reads
    sent_at: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    groups: dict[str, _G] = field(default_factory=dict)
    error: BaseException | None = None


def _own_copy(error: BaseException) -> BaseException:
    """`error` for one more reader of a failed call: a copy of its own, since an exception
    raised in several threads at once has its traceback grown by all of them (each
    reader's frames, mixed, and kept alive with it). The original itself when it cannot be
    copied (an exception class whose arguments do not rebuild it)."""
    try:
        copied = copy.copy(error)
    except Exception:  # any failure to copy: share the original, as before
        return error
    if type(copied) is not type(error) or str(copied) != str(error):
        return error
    return copied.with_traceback(None)


class GroupReads(Generic[_G]):
    """Reads groups by name through `describe(names) -> groups`, many names per call.

    `name_of(group)` gives a returned group's name. Thread-safe; one per client.
    """

    def __init__(
        self,
        describe: Callable[[Sequence[str]], Sequence[_G]],
        name_of: Callable[[_G], str],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        transient: Callable[[BaseException], bool] = lambda _exc: False,
    ) -> None:
        self._describe = describe
        self._transient = transient
        self._name_of = name_of
        self._monotonic = monotonic
        self._lock = threading.Condition()
        self._in_flight = False
        self._gathering: _Call[_G] | None = None  # the next call, still taking names
        self._waiting = 0  # names in calls not sent yet
        # Every group read, least recently fetched first: when a reader last asked for it.
        self._known: OrderedDict[str, float] = OrderedDict()
        self._unread: dict[str, float] = {}  # groups known, never read: since when known
        self._early: dict[str, tuple[float, _G]] = {}  # fetched along: (call sent at, group)
        self._suspect: set[str] = set()  # in a failed call since last read alone: not along
        self.calls = 0  # calls sent (for telemetry and tests)
        self.early = 0  # reads answered by a group fetched along

    def know(self, name: str) -> None:
        """`name` is a target's group: fetch it along with other reads before its first."""
        with self._lock:
            if name not in self._known:
                self._unread.setdefault(name, self._monotonic())

    @property
    def gathering(self) -> int:
        """Names waiting for a call to carry them (while another is in flight)."""
        with self._lock:
            return self._waiting

    def read(self, name: str, *, fresh: bool = False) -> _G | None:
        """The group called `name` as the service answers now, or None if there is none:
        from a call sent after this question, or (unless `fresh`) fetched along with
        others' at most `FRESH` seconds before it.

        Raises whatever `describe` raised for the call that carried `name`.
        """
        with self._lock:
            asked = self._monotonic()
            self._unread.pop(name, None)
            self._known[name] = asked
            self._known.move_to_end(name)
            early = self._early.pop(name, None)
            if early is not None and not fresh and asked - early[0] <= FRESH:
                self.early += 1
                return early[1]
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
                call.sent_at = self._monotonic()
                call.along = self._along(call)
        if sender:
            self._send(call)
        else:
            call.done.wait()
        if call.error is not None:
            if sender:
                raise call.error
            raise _own_copy(call.error) from call.error
        return call.groups.get(name)

    def forget(self) -> None:
        """Forget every group known and every answer fetched along."""
        with self._lock:
            self._known.clear()
            self._unread.clear()
            self._early.clear()
            self._suspect.clear()

    def drop(self, name: str) -> None:
        """Forget any answer about `name` fetched along, and keep one that a call in flight
        brings back (sent before now) from being kept: its group is being changed."""
        with self._lock:
            self._early.pop(name, None)
            self._known[name] = self._monotonic()
            self._known.move_to_end(name)

    def _along(self, call: _Call[_G]) -> list[str]:
        """Names to fill `call` with, least recently fetched first (lock held)."""
        now = call.sent_at
        for name in [n for n, (at, _) in self._early.items() if now - at > FRESH]:
            del self._early[name]
        if not call.names.isdisjoint(self._suspect):
            return []  # a call that may fail again takes no other group down with it
        room = MAX_NAMES - len(call.names)
        along: list[str] = []
        gone: list[str] = []
        for known in (self._unread, self._known):  # never read first, in the order known
            for name, asked in known.items():
                if len(along) >= room:
                    break
                if now - asked > FORGET:
                    gone.append(name)
                elif not (name in call.names or name in self._early or name in self._suspect):
                    along.append(name)
        for name in gone:
            self._unread.pop(name, None)
            self._known.pop(name, None)
            self._suspect.discard(name)
        for name in along:
            since = self._unread.pop(name, None)
            self._known[name] = self._known[name] if since is None else since
            self._known.move_to_end(name)
        return along

    def _send(self, call: _Call[_G]) -> None:
        try:
            found = self._describe(sorted(call.names.union(call.along)))
            call.groups = {self._name_of(g): g for g in found}
        except BaseException as exc:
            call.error = exc
        finally:
            with self._lock:
                self._in_flight = False
                if call.error is not None and not self._transient(call.error):
                    # Refused (not throttled): ride along again only once read alone.
                    self._suspect.update(call.names.union(call.along))
                else:
                    self._suspect.difference_update(call.names)
                for name in call.along:
                    group = call.groups.get(name)
                    # Not if a reader asked since the call was sent: it had a later answer.
                    # (One call is in flight at a time, so no answer kept is newer.)
                    if group is not None and self._known.get(name, 0.0) <= call.sent_at:
                        self._early[name] = (call.sent_at, group)
                self._lock.notify_all()
            call.done.set()
