"""The region's scaling activities, read once for every ASG target (`aws_activity`).

A fake `page` plays AWS's DescribeScalingActivities over a list of activities (in
progress first, then newest first, pages with a NextToken); the clocks are the test's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autoscaler.adapters.targets.aws_activity import (
    FIRST_PAGES,
    FRESH,
    LOOKBACK,
    OVERLAP,
    ActivityFeed,
)

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

    web, api, idle = (feed.recent(g, send) for g in ("web", "api", "idle"))

    assert web.running == () and web.last_change == NOW - timedelta(minutes=30)
    assert [a["ActivityId"] for a in api.running] == [running]
    assert api.last_change == NOW - timedelta(seconds=30)
    assert idle.running == () and idle.last_change is None


def test_statuses_asked_within_fresh_seconds_share_one_request(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    aws.add("web", ago=timedelta(minutes=1))
    for i in range(100):
        feed.recent(f"g{i}", send)
        clocks.advance(FRESH / 200)
    assert len(aws.requests) == 1

    clocks.advance(FRESH)
    feed.recent("web", send)

    assert len(aws.requests) == 2


def test_readers_arriving_during_a_scan_wait_for_it_instead_of_sending_their_own(
    aws: Aws, feed: ActivityFeed
) -> None:
    release = threading.Event()
    slow_page = aws.page

    def page(params: Mapping[str, Any]) -> Any:
        release.wait(5)
        return slow_page(params)

    feed._page = page
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(feed.recent, f"g{i}", send) for i in range(8)]
        release.set()
        for f in futures:
            f.result(timeout=5)

    assert len(aws.requests) == 1


def test_the_first_scan_reads_pages_back_to_the_lookback_and_no_further(
    aws: Aws, feed: ActivityFeed
) -> None:
    for i in range(6 * 180):  # six hours, one every 20 s
        aws.add(f"g{i % 7}", ago=timedelta(seconds=20 * i + 1))

    feed.recent("g0", send)

    pages_to_lookback = LOOKBACK // timedelta(seconds=20) // 100 + 1  # 2 of the 11
    assert len(aws.requests) == pages_to_lookback
    assert all(r["MaxRecords"] == 100 for r in aws.requests)


def test_a_first_scan_longer_than_its_page_budget_stops_and_says_what_is_not_known(
    aws: Aws, feed: ActivityFeed, caplog: pytest.LogCaptureFixture
) -> None:
    for second in range((FIRST_PAGES + 5) * 100):  # all within the lookback
        aws.add("busy", ago=timedelta(seconds=second * LOOKBACK.total_seconds() / 3000))

    feed.recent("busy", send)

    assert len(aws.requests) == FIRST_PAGES
    assert "desired changes by others before the last one read are not known" in caplog.text


def test_a_later_scan_reads_only_down_to_the_last_one_less_the_overlap(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    for i in range(300):  # 50 minutes, one every 10 s: three pages
        aws.add("web", ago=timedelta(seconds=10 * i + 1))
    feed.recent("web", send)
    first = len(aws.requests)
    assert first == 3

    clocks.advance(10)
    aws.add("web", ago=timedelta(seconds=-5))  # new since: started 5 s after NOW
    assert feed.recent("web", send).last_change == NOW + timedelta(seconds=5)

    assert len(aws.requests) - first == 1  # the overlap's 30 activities fit in one page


def test_an_activity_in_progress_stays_until_a_scan_sees_it_finish(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    ident = aws.add("web", ago=timedelta(seconds=20), status="InProgress")
    assert feed.recent("web", send).running

    clocks.advance(FRESH + 1)
    assert feed.recent("web", send).running  # still in progress

    aws.finish(ident)
    clocks.advance(FRESH + 1)
    assert feed.recent("web", send).running == ()


def test_an_activity_in_progress_aws_no_longer_lists_above_the_overlap_is_read_by_its_id(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    """Should AWS list an old activity in progress by its start time alone (not first),
    a later scan would stop above it: it is asked for by id instead of being dropped."""
    ident = aws.add("web", ago=timedelta(minutes=20), status="InProgress")
    feed.recent("web", send)
    original = aws.page

    def by_start_time_only(params: Mapping[str, Any]) -> Any:
        if "ActivityIds" in params:
            return original(params)
        aws.requests.append(dict(params))
        return {"Activities": []}  # nothing newer than the overlap

    feed._page = by_start_time_only
    clocks.advance(OVERLAP.total_seconds() * 2)

    assert [a["ActivityId"] for a in feed.recent("web", send).running] == [ident]
    assert aws.requests[-1]["ActivityIds"] == [ident]

    aws.finish(ident)
    clocks.advance(FRESH + 1)
    assert feed.recent("web", send).running == ()


def test_a_failed_scan_raises_to_its_reader_and_keeps_what_was_known(
    aws: Aws, feed: ActivityFeed, clocks: Clocks
) -> None:
    aws.add("web", ago=timedelta(minutes=3))
    assert feed.recent("web", send).last_change == NOW - timedelta(minutes=3)
    aws.failing = RuntimeError("Throttling")
    clocks.advance(FRESH + 1)

    with pytest.raises(RuntimeError, match="Throttling"):
        feed.recent("web", send)

    aws.failing = None
    assert feed.recent("web", send).last_change == NOW - timedelta(minutes=3)


def test_forget_makes_the_next_status_scan_back_the_whole_lookback(
    aws: Aws, feed: ActivityFeed
) -> None:
    aws.add("web", ago=timedelta(minutes=3))
    feed.recent("web", send)
    aws.activities.clear()

    feed.forget()

    assert feed.recent("web", send).last_change is None
    assert len(aws.requests) == 2
