"""A `Lane` runs blocking calls on threads of its own, and a full lane refuses at once
(`ServiceBusy`, a 503 with Retry-After) instead of queueing without bound."""

from __future__ import annotations

import asyncio
import threading

import pytest

from autoscaler.api.lanes import Lane
from autoscaler.errors import ServiceBusy


def test_a_full_lane_refuses_with_retry_after_and_takes_calls_again_once_they_end() -> None:
    lane = Lane("previews", threads=1, limit=2, retry_after=5)
    release = threading.Event()

    async def scenario() -> list[str | bool]:  # False: a call that waited in vain
        held = [asyncio.ensure_future(lane.run(lambda: release.wait(5) and "held")) for _ in "ab"]
        await asyncio.sleep(0.05)  # one runs, one waits for the lane's only thread
        with pytest.raises(ServiceBusy, match=r"2 previews are under way already \(at most 2\)"):
            await lane.run(lambda: "refused")
        release.set()
        answers = list(await asyncio.gather(*held))
        return [*answers, await lane.run(lambda: "after")]

    try:
        assert asyncio.run(scenario()) == ["held", "held", "after"]
    finally:
        release.set()
    assert lane.in_flight == 0


def test_the_refusal_carries_the_lanes_retry_after() -> None:
    lane = Lane("previews", threads=1, limit=0, retry_after=5)
    with pytest.raises(ServiceBusy) as refused:
        asyncio.run(lane.run(lambda: None))
    assert refused.value.retry_after == 5
