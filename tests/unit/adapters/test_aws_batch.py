"""`GroupReads`: groups read at the same moment share one DescribeAutoScalingGroups call,
a reader alone never waits, and no reader gets an answer to a call sent before it asked."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from autoscaler.adapters.targets.aws_batch import FORGET, FRESH, MAX_NAMES, GroupReads
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
    assert aws.calls == [["a"], ["a", "b"]]  # "a", known, rides along in "b"'s call


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
    assert aws.calls == [["a"], ["a", "b", "c", "d"]]
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

    assert len(aws.calls) == 3
    assert max(len(c) for c in aws.calls) == MAX_NAMES
    assert {n for c in aws.calls[1:] for n in c} == {"blocker", *names}
    assert all(isinstance(results[n], dict) for n in names)


def test_a_missing_group_reads_as_none() -> None:
    assert reads_of(FakeAws(["a"])).read("ghost") is None


Results = dict[str, Group | BaseException | None]


def b_and_c_share_a_call(
    reads: GroupReads[Group], hold: threading.Event, sent: Callable[[], int]
) -> tuple[Results, Results]:
    """ "a" reads alone, its call held in flight (`hold`); "b" and "c" gather meanwhile and
    share the next call once `hold` is set. The results of "a", and of "b" and "c"."""
    hold.clear()
    first, join_first = in_threads(reads, ["a"])
    wait_until(lambda: sent() == 1, timeout=5, what="the first call in flight")
    others, join_others = in_threads(reads, ["b", "c"])
    wait_until(lambda: reads.gathering == 2, timeout=5, what="two readers gathered")
    hold.set()
    join_first()
    join_others()
    return first, others


def test_a_failed_call_fails_each_of_its_readers_and_only_them() -> None:
    aws = FakeAws(["a", "b", "c"])
    aws.refused = {"c"}
    reads = reads_of(aws)

    first, others = b_and_c_share_a_call(reads, aws.hold, lambda: len(aws.calls))

    assert isinstance(first["a"], dict)
    assert [str(others["b"]), str(others["c"])] == ["Throttling (call 2)"] * 2
    assert reads.read("b") == {"AutoScalingGroupName": "b", "call": "3"}  # a retry gathers anew


def test_each_reader_of_a_failed_call_raises_an_exception_of_its_own() -> None:
    aws = FakeAws(["a", "b", "c"])
    aws.refused = {"c"}

    _, others = b_and_c_share_a_call(reads_of(aws), aws.hold, lambda: len(aws.calls))

    b, c = others["b"], others["c"]
    assert isinstance(b, RuntimeError) and isinstance(c, RuntimeError)
    assert b is not c  # raised in two threads at once, one object's traceback grew twice
    assert str(b) == str(c) == "Throttling (call 2)"
    copied, original = (b, c) if b.__cause__ is c else (c, b)
    assert copied.__cause__ is original  # the copy says where it came from


def test_an_exception_that_cannot_be_copied_is_shared_as_before() -> None:
    class Odd(Exception):
        def __init__(self, code: int, why: str) -> None:
            super().__init__(f"{code}: {why}")  # args do not rebuild it

    gate = threading.Event()
    calls: list[int] = []

    def describe(names: Sequence[str]) -> list[Group]:
        calls.append(len(names))
        gate.wait(10)
        raise Odd(503, "down")

    reads: GroupReads[Group] = GroupReads(describe, lambda g: g["name"])

    first, others = b_and_c_share_a_call(reads, gate, lambda: len(calls))

    assert isinstance(first["a"], Odd)
    assert others["b"] is others["c"]
    assert str(others["b"]) == "503: down"


# --- groups fetched along: other targets' groups fill a call up to its 50 names ---------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def timed_reads(aws: FakeAws, clock: Clock) -> GroupReads[Group]:
    return GroupReads(aws.describe, lambda g: g["AutoScalingGroupName"], monotonic=clock)


def test_known_groups_ride_along_and_answer_their_reads_for_fresh_seconds() -> None:
    aws, clock = FakeAws(list("abcde")), Clock()
    reads = timed_reads(aws, clock)
    for name in "abcde":
        reads.know(name)

    assert reads.read("a") == {"AutoScalingGroupName": "a", "call": "1"}
    assert aws.calls == [list("abcde")]
    clock.now += FRESH
    assert reads.read("b") == {"AutoScalingGroupName": "b", "call": "1"}  # no call
    assert (len(aws.calls), reads.early) == (1, 1)
    clock.now += 0.01
    assert reads.read("c") == {"AutoScalingGroupName": "c", "call": "2"}  # too old
    assert reads.read("d", fresh=True)["call"] == "3"  # type: ignore[index]


def test_groups_never_read_ride_along_first_in_the_order_known_then_the_least_recent() -> None:
    names = [f"g{i:03d}" for i in range(3 * MAX_NAMES)]
    aws, clock = FakeAws(names), Clock()
    reads = timed_reads(aws, clock)
    for name in names:
        reads.know(name)

    reads.read("g100")
    reads.read("g101", fresh=True)
    reads.read("g102", fresh=True)
    clock.now += FRESH + 0.1  # the answers fetched along are too old: fetched again
    reads.read("g060", fresh=True)

    first, second, third, fourth = aws.calls
    assert first == sorted(["g100", *names[: MAX_NAMES - 1]])
    assert second == sorted(["g101", *names[MAX_NAMES - 1 : 2 * MAX_NAMES - 2]])
    assert third == sorted(["g102", "g098", "g099", *names[103:]])  # the last never read
    assert {"g100", "g000", "g001"} <= set(fourth)  # then the least recently fetched


def test_an_answer_fetched_along_is_dropped_once_its_group_is_read_meanwhile() -> None:
    aws, clock = FakeAws(["a", "b"]), Clock()
    reads = timed_reads(aws, clock)
    reads.know("b")
    aws.hold.clear()
    _, join_a = in_threads(reads, ["a"])  # carries "b" along
    wait_until(lambda: len(aws.calls) == 1, timeout=5, what="the first call in flight")
    clock.now += 0.5
    got, join_b = in_threads(reads, ["b"])  # asked after that call left: gathers anew
    wait_until(lambda: reads.gathering == 1, timeout=5, what="b gathered")
    aws.hold.set()
    join_a()
    join_b()
    assert got["b"] == {"AutoScalingGroupName": "b", "call": "2"}

    # The first call's older answer about "b" is not kept to answer a later read.
    assert reads.read("b")["call"] == "3"  # type: ignore[index]


def test_a_group_nobody_read_for_an_hour_no_longer_rides_along() -> None:
    aws, clock = FakeAws(["a", "old"]), Clock()
    reads = timed_reads(aws, clock)
    reads.read("old")
    clock.now += FORGET + 1

    reads.read("a")
    reads.read("a", fresh=True)

    assert aws.calls == [["old"], ["a"], ["a"]]


def test_the_names_of_a_failed_call_ride_along_again_only_once_read_again() -> None:
    aws, clock = FakeAws(["a", "bad", "c"]), Clock()
    aws.refused = {"bad"}
    reads = timed_reads(aws, clock)
    for name in ("bad", "c"):
        reads.know(name)

    result, join = in_threads(reads, ["a"])
    join()
    assert str(result["a"]) == "Throttling (call 1)"  # taken down by "bad", once

    assert reads.read("a") == {"AutoScalingGroupName": "a", "call": "2"}
    assert aws.calls == [["a", "bad", "c"], ["a"]]


def test_a_name_aws_keeps_refusing_no_longer_rides_along_at_every_interval() -> None:
    aws, clock = FakeAws(["a", "bad"]), Clock()
    aws.refused = {"bad"}
    reads = timed_reads(aws, clock)
    reads.know("bad")
    result, join = in_threads(reads, ["a"])
    join()
    assert str(result["a"]) == "Throttling (call 1)"

    for _ in range(3):  # "bad"'s own reads go on failing; "a"'s never carry it again
        clock.now += 10
        failed, join = in_threads(reads, ["bad"])
        join()
        assert isinstance(failed["bad"], RuntimeError)
        assert reads.read("a", fresh=True) is not None

    assert [c for c in aws.calls if "a" in c] == [["a", "bad"]] + [["a"]] * 3


def test_an_answer_fetched_along_before_a_scale_is_not_kept_after_it() -> None:
    """A call sent before `drop` (the scale) that lands after it brings the old group."""
    aws, clock = FakeAws(["a", "x"]), Clock()
    reads = timed_reads(aws, clock)
    reads.know("x")
    aws.hold.clear()
    _, join = in_threads(reads, ["a"])  # carries "x" along, in flight
    wait_until(lambda: len(aws.calls) == 1, timeout=5, what="the call in flight")
    clock.now += 0.1
    reads.drop("x")  # "x" is being scaled now
    aws.hold.set()
    join()

    assert reads.read("x")["call"] == "2"  # type: ignore[index]


def test_a_throttled_call_keeps_its_names_riding_along() -> None:
    """Only a refusal keeps names out of other calls: throttling passes, batching stays."""
    aws, clock = FakeAws(["a", "b", "c"]), Clock()
    aws.refused = {"a"}
    reads = GroupReads(
        aws.describe, lambda g: g["AutoScalingGroupName"], monotonic=clock, transient=lambda e: True
    )
    for name in ("b", "c"):
        reads.know(name)
    result, join = in_threads(reads, ["a"])
    join()
    assert isinstance(result["a"], RuntimeError)
    aws.refused = set()

    clock.now += 10
    reads.read("a")

    assert aws.calls == [["a", "b", "c"], ["a", "b", "c"]]
