"""The scaling activities of every group of one region, read for all its targets at once.

An ASG target's status needs its group's activities: those still in progress (the group
is busy) and the start of the latest one that changed the desired capacity (the cooldown
after someone else's change). Read per group, that is one DescribeScalingActivities call
per target per evaluation, 100 a second at 1,000 groups on a 10 s interval: far past
what AWS lets one account call its Auto Scaling API before it throttles, and then every
target is unreadable and every policy holds. Without a group name the same call lists the
activities of every group of the region, in progress first, then by start time, newest
first. `ActivityFeed` reads that list for every target of one client:

- the first scan reads back `LOOKBACK` (one hour), at most `FIRST_PAGES` pages; later
  scans only down to where the one before started, less `OVERLAP` (clocks and AWS's
  eventual consistency), usually one page;
- what it learns it keeps: the latest desired change of every group seen since the first
  scan's lookback, and the activities in progress;
- an activity in progress at one scan and not listed by the next (should AWS list it
  below the overlap) is read again by its id, so it never silently stops counting;
- a status is answered from a scan sent at most `FRESH` seconds before it was asked: at
  1,000 targets on a 10 s interval, about five scans per interval instead of 1,000 calls.

So at most `FRESH` seconds of a new activity can go unseen; the group's own description
(read fresh for every status, `aws_batch`) shows a desired change at once. An external
change older than the first scan's lookback (one hour before the service started) is not
known: a cooldown longer than that does not apply to it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mypy_boto3_autoscaling.type_defs import (
        ActivitiesTypeTypeDef,
        ActivityTypeDef,
    )

__all__ = [
    "DESIRED_CHANGE_MARK",
    "FINISHED_ACTIVITY",
    "FIRST_PAGES",
    "FRESH",
    "LOOKBACK",
    "OVERLAP",
    "ActivityFeed",
    "Recent",
]

log = logging.getLogger(__name__)

R = TypeVar("R")

# Statuses of scaling activities that are over.
FINISHED_ACTIVITY = frozenset({"Successful", "Failed", "Cancelled"})
# Present in the Cause of every activity that follows a desired-capacity change, whoever
# made it (a user, a scaling policy, a scheduled action, us).
DESIRED_CHANGE_MARK = "changing the desired capacity"

LOOKBACK = timedelta(hours=1)  # how far back the first scan reads
FIRST_PAGES = 20  # pages (of 100) the first scan reads at most: it must fit in a deadline
OVERLAP = timedelta(minutes=5)  # a later scan reads this far below the one before
FRESH = 2.0  # seconds: how old a scan may be when a status is answered from it
PAGE = 100  # DescribeScalingActivities' largest MaxRecords
IDS_PER_CALL = 50  # DescribeScalingActivities' largest list of ActivityIds

# Sends one page request (`Send` wraps it in the caller's retries and deadline).
Page = Callable[[Mapping[str, Any]], "ActivitiesTypeTypeDef"]
Send = Callable[[Callable[[], R]], R]


@dataclass(frozen=True, slots=True)
class Recent:
    """What a group's status needs of its activities."""

    running: tuple[ActivityTypeDef, ...]  # in progress, as last read
    last_change: datetime | None  # start (UTC) of the latest desired-capacity change


class ActivityFeed:
    """The activities of every group that `page` lists (one client: one region and AWS
    configuration). Thread-safe: one scan at a time, the others wait for it and use it.

    `clock` is UTC wall time (activities' StartTime are AWS's), `monotonic` measures how
    old a scan is.
    """

    def __init__(
        self,
        page: Page,
        *,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float],
    ) -> None:
        self._page = page
        self._clock = clock or (lambda: datetime.now(UTC))
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._sent_at: float | None = None  # when the last complete scan was sent
        self._scanned_from: datetime | None = None  # the wall time it was sent
        self._running: dict[str, list[ActivityTypeDef]] = {}
        self._latest: dict[str, datetime] = {}
        self.calls = 0  # DescribeScalingActivities requests sent (for telemetry and tests)
        self.scans = 0

    def forget(self) -> None:
        """Forget every scan: the next status scans again, back `LOOKBACK`."""
        with self._lock:
            self._sent_at = self._scanned_from = None
            self._running, self._latest = {}, {}

    def recent(self, group: str, send: Send[Any]) -> Recent:
        """`group`'s activities, from a scan sent at most `FRESH` s before this call.

        `send(fn)` makes one request (`fn()`) under the caller's retries and deadline; its
        errors come out of here, and a failed scan leaves what was known before.
        """
        asked = self._monotonic()
        with self._lock:
            if self._sent_at is None or asked - self._sent_at > FRESH:
                self._scan(send)
            return Recent(tuple(self._running.get(group, ())), self._latest.get(group))

    # --- scanning (with `self._lock` held) -----------------------------------------------

    def _scan(self, send: Send[Any]) -> None:
        sent_at, now = self._monotonic(), self._clock()
        first = self._scanned_from is None
        floor = now - LOOKBACK if self._scanned_from is None else self._scanned_from - OVERLAP
        running: dict[str, list[ActivityTypeDef]] = {}
        latest: dict[str, datetime] = {}
        seen: set[str] = set()
        token: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"MaxRecords": PAGE}
            if token:
                params["NextToken"] = token
            answer = self._request(send, params)
            pages += 1
            below = _take(answer.get("Activities", []), floor, running, latest, seen)
            token = answer.get("NextToken")
            if below or not token:
                break
            if first and pages >= FIRST_PAGES:
                log.warning(
                    "scaling activities: the first scan stopped after %d pages (%d "
                    "activities); desired changes by others before the last one read are "
                    "not known, so cooldowns after them do not apply",
                    pages,
                    pages * PAGE,
                )
                break
        lost = [
            a["ActivityId"]
            for group in self._running.values()
            for a in group
            if a["ActivityId"] not in seen
        ]
        for start in range(0, len(lost), IDS_PER_CALL):
            params = {"ActivityIds": lost[start : start + IDS_PER_CALL], "MaxRecords": PAGE}
            _take(self._request(send, params).get("Activities", []), None, running, latest, seen)
        # Complete: commit it.
        for group, at in latest.items():
            known = self._latest.get(group)
            if known is None or at > known:
                self._latest[group] = at
        self._running = running
        self._sent_at, self._scanned_from = sent_at, now
        self.scans += 1

    def _request(self, send: Send[Any], params: Mapping[str, Any]) -> Any:
        self.calls += 1
        return send(lambda: self._page(params))


def _take(
    activities: Iterable[ActivityTypeDef],
    floor: datetime | None,
    running: dict[str, list[ActivityTypeDef]],
    latest: dict[str, datetime],
    seen: set[str],
) -> bool:
    """Sort a page into `running` and `latest`; True once a finished activity older than
    `floor` is met (the list is newest first below those in progress: the rest is older)."""
    for a in activities:
        group = a.get("AutoScalingGroupName", "")
        seen.add(a["ActivityId"])
        start = a["StartTime"].astimezone(UTC)
        finished = a["StatusCode"] in FINISHED_ACTIVITY
        if not finished:
            running.setdefault(group, []).append(a)
        changed = DESIRED_CHANGE_MARK in a.get("Cause", "")
        if changed and (group not in latest or start > latest[group]):
            latest[group] = start
        if finished and floor is not None and start < floor:
            return True
    return False
