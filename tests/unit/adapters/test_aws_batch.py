"""`GroupReads`: groups read at the same moment share one DescribeAutoScalingGroups call,
a reader alone never waits, and no reader gets an answer to a call sent before it asked."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from autoscaler.adapters.targets.aws_batch import MAX_NAMES, GroupReads
from tests.support.net import wait_until

Group = dict[str, str]


class FakeAws:
    """`describe(names)` that records each call and can hold the next one in flight."""

    def __init__(self, existing: Sequence[str]) -> None:
        self.existing = set(existing)
        self.calls: list[list[str]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.refused: set[str] = set()  # a call carrying any of these names fails

    def describe(self, names: Sequence[str]) -> list[Group]:
        self.calls.append(list(names))
        self.hold.wait(10)
        if self.refused & set(names):
            raise RuntimeError(f"Throttling (call {len(self.calls)})")
        return [{"AutoScalingGroupName": n, "call": str(len(self.calls))} for n in names
                if n in self.existing]  # fmt: skip


def reads_of(aws: FakeAws) -> GroupReads[Group]:
    return GroupReads(aws.describe, lambda g: g["AutoScalingGroupName"])


def in_threads(
    reads: GroupReads[Group], names: Sequence[str]
) -> tuple[dict[str, Group | BaseException | None], Callable[[], None]]:
    """Start a reader per name; the results, and a function that waits for them all."""
    results: dict[str, Group | BaseException | None] = {}

    def read(name: str) -> None:
        try:
            results[name] = reads.read(name)
        except Exception as exc:
            results[name] = exc

    threads = [threading.Thread(target=read, args=(n,)) for n in names]
    for thread in threads:
        thread.start()

    def join() -> None:
        for thread in threads:
            thread.join(10)

    return results, join


def test_a_reader_alone_sends_its_call_at_once() -> None:
    aws = FakeAws(["a", "b"])
    reads = reads_of(aws)

    first, second = reads.read("a"), reads.read("b")

    assert (first, second) == ({"AutoScalingGroupName": "a", "call": "1"},
                               {"AutoScalingGroupName": "b", "call": "2"})  # fmt: skip
    assert aws.calls == [["a"], ["b"]]


def test_readers_arriving_during_a_call_share_the_next_one() -> None:
    aws = FakeAws(["a", "b", "c", "d"])
    reads = reads_of(aws)
    aws.hold.clear()
    first, join_first = in_threads(reads, ["a"])
    wait_until(lambda: len(aws.calls) == 1, timeout=5, what="the first call in flight")

    others, join_others = in_threads(reads, ["b", "c", "d"])
    wait_until(lambda: reads.gathering == 3, timeout=5, what="three readers gathered")
    aws.hold.set()
    join_first()
    join_others()

    # The readers that came during the first call were not answered by it.
    assert aws.calls == [["a"], ["b", "c", "d"]]
    assert first["a"] == {"AutoScalingGroupName": "a", "call": "1"}
    assert others == {n: {"AutoScalingGroupName": n, "call": "2"} for n in "bcd"}


def test_more_names_than_one_call_takes_are_split() -> None:
    names = [f"g{i:03d}" for i in range(MAX_NAMES + 5)]
    aws = FakeAws(["blocker", *names])
    reads = reads_of(aws)
    aws.hold.clear()
    _, join_first = in_threads(reads, ["blocker"])
    wait_until(lambda: len(aws.calls) == 1, timeout=5, what="the first call in flight")

    results, join = in_threads(reads, names)
    wait_until(lambda: reads.gathering == len(names), timeout=5, what="every reader gathered")
    aws.hold.set()
    join_first()
    join()

    assert sorted(len(c) for c in aws.calls[1:]) == [5, MAX_NAMES]
    assert all(isinstance(results[n], dict) for n in names)


def test_a_missing_group_reads_as_none() -> None:
    assert reads_of(FakeAws(["a"])).read("ghost") is None


def test_a_failed_call_fails_each_of_its_readers_and_only_them() -> None:
    aws = FakeAws(["a", "b", "c"])
    aws.refused = {"c"}
    reads = reads_of(aws)
    aws.hold.clear()
    first, join_first = in_threads(reads, ["a"])
    wait_until(lambda: len(aws.calls) == 1, timeout=5, what="the first call in flight")
    others, join_others = in_threads(reads, ["b", "c"])
    wait_until(lambda: reads.gathering == 2, timeout=5, what="two readers gathered")

    aws.hold.set()
    join_first()
    join_others()

    assert isinstance(first["a"], dict)
    assert [str(others["b"]), str(others["c"])] == ["Throttling (call 2)"] * 2
    assert reads.read("b") == {"AutoScalingGroupName": "b", "call": "3"}  # a retry gathers anew
