"""The region's scaling activities, read once for every ASG target (`aws_activity`).

A fake `page` plays AWS's DescribeScalingActivities over a list of activities (in
progress first, then newest first, pages with a NextToken); the clocks are the test's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from autoscaler.adapters.targets.aws_activity import (
    FRESH,
    LOOKBACK,
    LOST_KEEP,
    MAX_PAGES,
    OVERLAP,
    REMEMBER,
    ActivityFeed,
)
from autoscaler.errors import TargetUnavailable

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CHANGE = "a user request explicitly set group desired capacity changing the desired capacity"


class Aws:
    """DescribeScalingActivities over `activities`, counting the requests."""

    def __init__(self) -> None:
        self.activities: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.failing: Exception | None = None

    def add(
        self,
        group: str,
        *,
        ago: timedelta,
        status: str = "Successful",
        cause: str = CHANGE,
        ident: str | None = None,
    ) -> str:
        ident = ident or f"act-{len(self.activities)}"
        self.activities.append(
            {
                "ActivityId": ident,
                "AutoScalingGroupName": group,
                "Cause": cause,
                "StartTime": NOW - ago,
                "StatusCode": status,
            }
        )
        return ident

    def finish(self, ident: str) -> None:
        for a in self.activities:
            if a["ActivityId"] == ident:
                a["StatusCode"] = "Successful"

    def page(self, params: Mapping[str, Any]) -> Any:
        self.requests.append(dict(params))
        if self.failing is not None:
            raise self.failing
        ids = set(params.get("ActivityIds", ()))
        chosen = [a for a in self.activities if not ids or a["ActivityId"] in ids]
        chosen.sort(key=lambda a: a["StartTime"], reverse=True)
        chosen.sort(key=lambda a: a["StatusCode"] in ("Successful", "Failed", "Cancelled"))
        start = int(params.get("NextToken") or 0)
        size = params["MaxRecords"]
        answer: dict[str, Any] = {"Activities": [dict(a) for a in chosen[start : start + size]]}
        if start + size < len(chosen):
            answer["NextToken"] = str(start + size)
        return answer


class Clocks:
    def __init__(self) -> None:
        self.wall = NOW
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


def send(fn: Callable[[], Any]) -> Any:
    return fn()


@pytest.fixture
def aws() -> Aws:
    return Aws()


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def feed(aws: Aws, clocks: Clocks) -> ActivityFeed:
    return ActivityFeed(aws.page, clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)


def test_each_group_gets_its_own_activities_in_progress_and_latest_desired_change(
    aws: Aws, feed: ActivityFeed
) -> None:
    aws.add("web", ago=timedelta(minutes=30))
    aws.add("web", ago=timedelta(minutes=10), cause="an instance was replaced: unhealthy")
    running = aws.add("api", ago=timedelta(seconds=30), status="InProgress")
    aws.add("api", ago=timedelta(minutes=50))

    web, api, idle = (feed.recent(g, send, wait=5) for g in ("web", "api", "idle"))

    assert web.running == () and web.last_change == NOW - timedelta(minutes=30)
    assert [a["ActivityId"] for a in api.running] == [running]
    assert api.last_change == NOW - timedelta(seconds=30)
    assert idle.running == () and idle.last_change is None


def test_statuses_asked_within_fresh_seconds_share_one_request(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    aws.add("web", ago=timedelta(minutes=1))
    for i in range(100):
        feed.recent(f"g{i}", send, wait=5)
        clocks.advance(FRESH / 200)
    assert len(aws.requests) == 1

    clocks.advance(FRESH)
    feed.recent("web", send, wait=5)

    assert len(aws.requests) == 2


def test_readers_waiting_on_a_failing_scan_share_its_error_instead_of_each_scanning(
    aws: Aws, feed: ActivityFeed
) -> None:
    """Under throttling, the readers queued behind a failed scan do not each send theirs."""
    entered, release = threading.Event(), threading.Event()

    def throttled(params: Mapping[str, Any]) -> Any:
        aws.requests.append(dict(params))
        entered.set()
        release.wait(5)
        raise RuntimeError("Throttling: Rate exceeded")

    feed._page = throttled
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(feed.recent, "g0", send, wait=5)
        assert entered.wait(5)
        others = [pool.submit(feed.recent, f"g{i}", send, wait=5) for i in range(1, 8)]
        time.sleep(0.2)  # the others reach the lock while the scan is in flight
        release.set()
        with pytest.raises(RuntimeError, match="Throttling"):
            first.result(timeout=5)
        for future in others:  # each its own exception, naming the shared failure
            with pytest.raises(TargetUnavailable, match=r"Throttling.*for another target"):
                future.result(timeout=5)

    assert len(aws.requests) == 1


def test_a_reader_does_not_wait_on_another_readers_scan_past_its_own_deadline(
    aws: Aws, feed: ActivityFeed
) -> None:
    release = threading.Event()

    def hanging(params: Mapping[str, Any]) -> Any:
        release.wait(5)
        return {"Activities": []}

    feed._page = hanging
    with ThreadPoolExecutor(2) as pool:
        pool.submit(feed.recent, "g0", send, wait=5)
        time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(TargetUnavailable, match="did not end within"):
            feed.recent("g1", send, wait=0.2)
        assert time.monotonic() - started < 2
        release.set()


def test_the_first_scan_reads_pages_back_to_the_lookback_and_no_further(
    aws: Aws, feed: ActivityFeed
) -> None:
    for i in range(6 * 180):  # six hours, one every 20 s
        aws.add(f"g{i % 7}", ago=timedelta(seconds=20 * i + 1))

    feed.recent("g0", send, wait=5)

    pages_to_lookback = LOOKBACK // timedelta(seconds=20) // 100 + 1  # 2 of the 11
    assert len(aws.requests) == pages_to_lookback
    assert all(r["MaxRecords"] == 100 for r in aws.requests)


def test_a_scan_cut_short_counts_every_groups_cooldown_from_the_oldest_activity_read(
    aws: Aws, feed: ActivityFeed, caplog: pytest.LogCaptureFixture
) -> None:
    """A desired change older than what a capped scan read may exist: never assume none."""
    for i in range((MAX_PAGES + 5) * 100):  # all within the lookback
        aws.add("busy", ago=timedelta(seconds=1 + i), cause="an instance was replaced")
    aws.add("quiet", ago=timedelta(minutes=58))  # its change lies below the pages read

    quiet = feed.recent("quiet", send, wait=5)

    assert len(aws.requests) == MAX_PAGES
    oldest_read = NOW - timedelta(seconds=MAX_PAGES * 100)
    assert quiet.last_change == oldest_read
    assert feed.recent("never-changed", send, wait=5).last_change == oldest_read
    assert "every group's cooldown is counted from there" in caplog.text


def test_after_hours_without_a_status_a_scan_still_fits_its_pages_and_moves_on(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    """A backlog longer than one deadline can read must not fail every scan for ever."""
    feed.recent("web", send, wait=5)
    clocks.advance(5 * 3600)
    for i in range(5 * 3600 // 5):  # one every 5 s for the 5 hours: 3,600
        aws.add("web", ago=timedelta(seconds=-clocks.mono + 1000 + 5 * i + 1))
    before = len(aws.requests)

    assert feed.recent("web", send, wait=5).last_change is not None
    assert len(aws.requests) - before <= MAX_PAGES
    clocks.advance(FRESH + 1)
    before = len(aws.requests)
    feed.recent("web", send, wait=5)
    assert len(aws.requests) - before == 1  # the next scan is back to one page


def test_a_later_scan_reads_only_down_to_the_last_one_less_the_overlap(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    for i in range(300):  # 50 minutes, one every 10 s: three pages
        aws.add("web", ago=timedelta(seconds=10 * i + 1))
    feed.recent("web", send, wait=5)
    first = len(aws.requests)
    assert first == 3

    clocks.advance(10)
    aws.add("web", ago=timedelta(seconds=-5))  # new since: started 5 s after NOW
    assert feed.recent("web", send, wait=5).last_change == NOW + timedelta(seconds=5)

    assert len(aws.requests) - first == 1  # the overlap's 30 activities fit in one page


def test_an_activity_in_progress_stays_until_a_scan_sees_it_finish(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    ident = aws.add("web", ago=timedelta(seconds=20), status="InProgress")
    assert feed.recent("web", send, wait=5).running

    clocks.advance(FRESH + 1)
    assert feed.recent("web", send, wait=5).running  # still in progress

    aws.finish(ident)
    clocks.advance(FRESH + 1)
    assert feed.recent("web", send, wait=5).running == ()


def test_an_activity_in_progress_aws_no_longer_lists_above_the_overlap_is_read_by_its_id(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    """Should AWS list an old activity in progress by its start time alone (not first),
    a later scan would stop above it: it is asked for by id instead of being dropped."""
    ident = aws.add("web", ago=timedelta(minutes=20), status="InProgress")
    feed.recent("web", send, wait=5)
    original = aws.page

    def by_start_time_only(params: Mapping[str, Any]) -> Any:
        if "ActivityIds" in params:
            return original(params)
        aws.requests.append(dict(params))
        return {"Activities": []}  # nothing newer than the overlap

    feed._page = by_start_time_only
    clocks.advance(OVERLAP.total_seconds() * 2)

    assert [a["ActivityId"] for a in feed.recent("web", send, wait=5).running] == [ident]
    assert aws.requests[-1]["ActivityIds"] == [ident]

    aws.finish(ident)
    clocks.advance(FRESH + 1)
    assert feed.recent("web", send, wait=5).running == ()


def test_a_failed_scan_raises_to_its_reader_and_keeps_what_was_known(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    aws.add("web", ago=timedelta(minutes=3))
    assert feed.recent("web", send, wait=5).last_change == NOW - timedelta(minutes=3)
    aws.failing = RuntimeError("Throttling")
    clocks.advance(FRESH + 1)

    with pytest.raises(RuntimeError, match="Throttling"):
        feed.recent("web", send, wait=5)

    aws.failing = None
    sent = len(aws.requests)
    with pytest.raises(TargetUnavailable, match="Throttling"):  # its answer for FRESH s
        feed.recent("api", send, wait=5)
    assert len(aws.requests) == sent
    clocks.advance(FRESH + 1)
    assert feed.recent("web", send, wait=5).last_change == NOW - timedelta(minutes=3)


def test_forget_makes_the_next_status_scan_back_the_whole_lookback(
    aws: Aws, feed: ActivityFeed
) -> None:
    aws.add("web", ago=timedelta(minutes=3))
    feed.recent("web", send, wait=5)
    aws.activities.clear()

    feed.forget()

    assert feed.recent("web", send, wait=5).last_change is None
    assert len(aws.requests) == 2


def test_an_activity_in_progress_aws_no_longer_returns_at_all_holds_for_lost_keep(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    """AWS ignores unknown ids without an error: such an activity is not dropped at once."""
    ident = aws.add("web", ago=timedelta(seconds=20), status="InProgress")
    feed.recent("web", send, wait=5)
    aws.activities.clear()  # neither listed nor returned by id any more

    clocks.advance(LOST_KEEP.total_seconds() - 10)
    assert [a["ActivityId"] for a in feed.recent("web", send, wait=5).running] == [ident]
    clocks.advance(20)
    assert feed.recent("web", send, wait=5).running == ()


def test_scans_are_timed_by_aws_clock_not_this_hosts(aws: Aws, clocks: Clocks) -> None:
    """This host's clock 20 minutes ahead: a change AWS started between two scans is seen."""
    skewed = Aws()

    def page(params: Mapping[str, Any]) -> Any:
        answer = skewed.page(params)
        answer["ResponseMetadata"] = {"HTTPHeaders": {"date": format_datetime(clocks.wall)}}
        return answer

    feed = ActivityFeed(
        page, clock=lambda: clocks.wall + timedelta(minutes=20), monotonic=lambda: clocks.mono
    )
    for i in range(150):  # older history, so that the stop below has somewhere to be
        skewed.add("web", ago=timedelta(minutes=30, seconds=i), cause="replaced")
    feed.recent("web", send, wait=5)
    clocks.advance(60)
    skewed.add("web", ago=timedelta(seconds=-30))  # at AWS's NOW + 30 s
    skewed.add("web", ago=timedelta(seconds=-40), cause="replaced")  # newer, listed first

    assert feed.recent("web", send, wait=5).last_change == NOW + timedelta(seconds=30)


def test_desired_changes_are_remembered_for_a_day(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    aws.add("web", ago=timedelta(minutes=2))
    feed.recent("web", send, wait=5)
    aws.activities.clear()

    for _ in range(int(REMEMBER / timedelta(minutes=30)) - 1):  # a status every 30 min
        clocks.advance(1800)
        feed.recent("web", send, wait=5)
    assert feed.recent("web", send, wait=5).last_change == NOW - timedelta(minutes=2)
    clocks.advance(1800)
    feed.recent("web", send, wait=5)
    clocks.advance(1800)
    assert feed.recent("web", send, wait=5).last_change is None


def test_in_a_busy_region_a_capped_scan_that_read_back_past_the_last_one_leaves_no_gap(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    """More activities than the page cap since the last scan's overlap, but every one since
    that scan read: no group is held in a cooldown it does not have."""
    aws.add("quiet", ago=timedelta(minutes=30))
    feed.recent("quiet", send, wait=5)
    clocks.advance(FRESH + 1)
    for i in range(MAX_PAGES * 100 + 50):  # all after the last scan's start, less OVERLAP
        aws.add("busy", ago=timedelta(seconds=-(FRESH + 1) + 0.02 * i), cause="replaced")

    assert feed.recent("quiet", send, wait=5).last_change == NOW - timedelta(minutes=30)


def test_a_scan_cut_short_on_pages_of_activities_in_progress_counts_from_its_own_time(
    aws: Aws, feed: ActivityFeed
) -> None:
    for i in range(MAX_PAGES * 100 + 10):  # only activities in progress: no finished one read
        aws.add(f"g{i}", ago=timedelta(minutes=50, seconds=i), status="InProgress")

    assert feed.recent("quiet", send, wait=5).last_change == NOW
