"""The scaling activities of every group of one region, read for all its targets at once.

An ASG target's status needs its group's activities: those still in progress (the group
is busy) and the start of the latest one that changed the desired capacity (the cooldown
after someone else's change). Read per group, that is one DescribeScalingActivities call
per target per evaluation, 100 a second at 1,000 groups on a 10 s interval: far past
what AWS lets one account call its Auto Scaling API before it throttles, and then every
target is unreadable and every policy holds. Without a group name the same call lists the
activities of every group of the region, in progress first, then by start time, newest
first. `ActivityFeed` reads that list for every target of one client:

- a scan reads down to where the one before started, less `OVERLAP` (a minute, for
  AWS's eventual consistency), and never further back than `LOOKBACK` (one hour):
  usually one page;
- a scan reads at most `MAX_PAGES` pages (of 100), and none once its reader's deadline
  has come, so that it ends in time whatever the backlog (after hours without a status,
  or in a busy account); when one is cut short before reaching what the scan before
  read, a desired change older than what it read may be unknown, so every group is then
  treated as changed at the oldest activity read (its cooldown applies from there):
  never a scale-in sooner than a cooldown allows;
- what it learns it keeps: the latest desired change of every group (for `REMEMBER`,
  a day), and the activities in progress;
- an activity in progress at one scan and not listed by the next (should AWS list it
  below the overlap) is read again by its id; one AWS does not return then (it ignores
  unknown ids) still holds its group for `LOST_KEEP` after it was last seen;
- a status is answered from a scan sent at most `FRESH` seconds before it was asked, and
  a failed scan's error is the answer for `FRESH` seconds too (under throttling, readers
  do not each start a scan of their own); at 1,000 targets on a 10 s interval, about
  five scans per interval instead of 1,000 calls;
- scans are timed by AWS's clock (each answer's `Date`), which the activities' start
  times are in, not by this host's.

So at most `FRESH` seconds of a new activity can go unseen; the group's own description
(read for every status, `aws_batch`) shows a desired change at once. A desired change
made more than `LOOKBACK` before the service started (or before a scan cut short, as
above) is not known.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

from autoscaler.errors import TargetUnavailable

if TYPE_CHECKING:
    from mypy_boto3_autoscaling.type_defs import (
        ActivitiesTypeTypeDef,
        ActivityTypeDef,
    )

__all__ = [
    "DESIRED_CHANGE_MARK",
    "FINISHED_ACTIVITY",
    "FRESH",
    "LOOKBACK",
    "LOST_KEEP",
    "MAX_PAGES",
    "OVERLAP",
    "REMEMBER",
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

LOOKBACK = timedelta(hours=1)  # how far back a scan reads at most
MAX_PAGES = 20  # pages (of 100) a scan reads at most: it must fit in a deadline
OVERLAP = timedelta(minutes=1)  # a later scan reads this far below the one before
FRESH = 2.0  # seconds: how old a scan (or its failure) may be when a status is answered
LOST_KEEP = timedelta(minutes=10)  # an activity in progress AWS stopped returning holds
REMEMBER = timedelta(days=1)  # how long a group's latest desired change is kept
PAGE = 100  # DescribeScalingActivities' largest MaxRecords
IDS_PER_CALL = 50  # DescribeScalingActivities' largest list of ActivityIds
_WARN_EVERY = 600.0  # seconds between two warnings of scans cut short

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

    `clock` is UTC wall time, used only when an answer carries no `Date`; `monotonic`
    measures how old a scan is.
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
        self._scanned_from: datetime | None = None  # AWS's time then
        self._failure: tuple[float, BaseException] | None = None  # (failed at, error)
        self._running: dict[str, list[ActivityTypeDef]] = {}
        self._last_seen: dict[str, datetime] = {}  # activity id (in progress): when listed
        self._latest: dict[str, datetime] = {}
        self._gap_end: datetime | None = None  # changes up to here may not have been read
        self._pruned: datetime | None = None
        self._warned = -_WARN_EVERY

    def forget(self) -> None:
        """Forget every scan: the next status scans again, back `LOOKBACK`."""
        with self._lock:
            self._sent_at = self._scanned_from = self._failure = None
            self._gap_end = self._pruned = None
            self._running, self._last_seen, self._latest = {}, {}, {}

    def recent(self, group: str, send: Send[Any], *, wait: float) -> Recent:
        """`group`'s activities, from a scan sent at most `FRESH` s before this call.

        `send(fn)` makes one request (`fn()`) under the caller's retries and deadline; its
        errors come out of here (also to the readers that waited for that scan, and for
        `FRESH` s after it), and a failed scan leaves what was known before. `wait` is how
        long the caller may wait for another reader's scan (its deadline's time left).
        """
        asked = self._monotonic()
        if not self._lock.acquire(timeout=max(0.0, wait)):
            raise TargetUnavailable(
                f"DescribeScalingActivities: the region's listing, read by another target, "
                f"did not end within this target's {wait:.1f}s"
            )
        try:
            failure = self._failure
            if failure is not None and failure[0] >= asked - FRESH:
                # A fresh exception per reader: one object raised in several threads would
                # gather their tracebacks.
                raise TargetUnavailable(
                    f"{failure[1]} (the region's listing, failed "
                    f"{self._monotonic() - failure[0]:.1f}s ago for another target)"
                ) from None
            if self._sent_at is None or asked - self._sent_at > FRESH:
                try:
                    self._scan(send, asked + wait)
                except BaseException as exc:
                    self._failure = (self._monotonic(), exc)
                    raise
                self._failure = None
            last = self._latest.get(group)
            if self._gap_end is not None and (last is None or last < self._gap_end):
                last = self._gap_end
            return Recent(tuple(self._running.get(group, ())), last)
        finally:
            self._lock.release()

    # --- scanning (with `self._lock` held) -----------------------------------------------

    def _scan(self, send: Send[Any], until: float) -> None:
        """One scan, its pages sent while `until` (an instant of `monotonic`) has not come."""
        sent_at = self._monotonic()
        running: dict[str, list[ActivityTypeDef]] = {}
        latest: dict[str, datetime] = {}
        seen: set[str] = set()
        token: str | None = None
        pages = 0
        now: datetime | None = None
        floor = self._clock()
        gap_end: datetime | None = None
        oldest: datetime | None = None  # of the finished activities read
        while True:
            params: dict[str, Any] = {"MaxRecords": PAGE}
            if token:
                params["NextToken"] = token
            answer = self._request(send, params)
            pages += 1
            if now is None:  # AWS's time, which the start times are in
                now = _date(answer) or self._clock()
                floor = now - LOOKBACK
                if self._scanned_from is not None:
                    if self._scanned_from - OVERLAP >= floor:
                        floor = self._scanned_from - OVERLAP
                    else:  # a backlog longer than LOOKBACK: what is older is not read
                        gap_end = floor
            activities = answer.get("Activities", [])
            below = _take(activities, floor, running, latest, seen)
            for a in activities:
                if a["StatusCode"] in FINISHED_ACTIVITY:
                    oldest = a["StartTime"].astimezone(UTC)  # newest first: the last is oldest
            token = answer.get("NextToken")
            if below or not token:
                break
            if pages >= MAX_PAGES or self._monotonic() >= until:
                # What is older than the oldest read may be unknown, unless an earlier scan
                # read it: everything since that scan's start was read.
                cut = oldest or now
                if self._scanned_from is None or cut > self._scanned_from:
                    gap_end = cut if gap_end is None else max(gap_end, cut)
                    self._warn_cut(pages, cut)
                break
        assert now is not None
        self._reread_lost(send, running, latest, seen, now)
        self._commit(running, latest, seen, now, gap_end)
        self._sent_at, self._scanned_from = sent_at, now

    def _commit(
        self,
        running: dict[str, list[ActivityTypeDef]],
        latest: dict[str, datetime],
        seen: set[str],
        now: datetime,
        gap_end: datetime | None,
    ) -> None:
        """What a complete scan read becomes what is known."""
        for group, at in latest.items():
            known = self._latest.get(group)
            if known is None or at > known:
                self._latest[group] = at
        if gap_end is not None and (self._gap_end is None or gap_end > self._gap_end):
            self._gap_end = gap_end
        # Listed now: seen now; kept though not returned (`_reread_lost`): as before.
        ids = [a["ActivityId"] for group_activities in running.values() for a in group_activities]
        self._last_seen = {i: now if i in seen else self._last_seen.get(i, now) for i in ids}
        self._running = running
        self._prune(now)

    def _reread_lost(
        self,
        send: Send[Any],
        running: dict[str, list[ActivityTypeDef]],
        latest: dict[str, datetime],
        seen: set[str],
        now: datetime,
    ) -> None:
        """Activities in progress at the last scan and not listed by this one: asked for by
        id; one AWS does not return stays in progress for `LOST_KEEP` after last seen."""
        lost = {
            a["ActivityId"]: (group, a)
            for group, group_activities in self._running.items()
            for a in group_activities
            if a["ActivityId"] not in seen
        }
        ids = list(lost)
        for start in range(0, len(ids), IDS_PER_CALL):
            params = {"ActivityIds": ids[start : start + IDS_PER_CALL], "MaxRecords": PAGE}
            answer = self._request(send, params)
            _take(answer.get("Activities", []), None, running, latest, seen)
        for ident, (group, activity) in lost.items():
            if ident in seen:
                continue
            last_seen = self._last_seen.get(ident, now)
            if now - last_seen <= LOST_KEEP:
                running.setdefault(group, []).append(activity)
            else:
                log.warning(
                    "scaling activity %s of %s, in progress when last listed %s ago, is no "
                    "longer returned by AWS: no longer counted as in progress",
                    ident,
                    group,
                    now - last_seen,
                )

    def _prune(self, now: datetime) -> None:
        """Forget desired changes (and a scan's gap) older than `REMEMBER`, once a minute."""
        if self._pruned is not None and now - self._pruned < timedelta(minutes=1):
            return
        self._pruned = now
        old = now - REMEMBER
        self._latest = {g: at for g, at in self._latest.items() if at >= old}
        if self._gap_end is not None and self._gap_end < old:
            self._gap_end = None

    def _warn_cut(self, pages: int, oldest: datetime) -> None:
        mono = self._monotonic()
        if mono - self._warned < _WARN_EVERY:
            return
        self._warned = mono
        log.warning(
            "scaling activities: a scan of the region stopped after %d pages (%d "
            "activities, back to %s): a desired change by others before that may not be "
            "known, so every group's cooldown is counted from there",
            pages,
            pages * PAGE,
            oldest.isoformat(),
        )

    def _request(self, send: Send[Any], params: Mapping[str, Any]) -> Any:
        return send(lambda: self._page(params))


def _date(answer: Mapping[str, Any]) -> datetime | None:
    """AWS's time when it answered (the HTTP `Date` header botocore keeps), if given."""
    headers = (answer.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    text = headers.get("date")
    if not text:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    # "-0000" (no zone given) parses as naive: the HTTP date is UTC all the same.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


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
