"""Policy unit tests: given check values over time, does each policy decide as expected?

Each policy named by an expectation is replayed through the production reconciler
(`harness.Replay`) from `0s` to its last expected instant, every `interval` (the test's,
else the policy's own). A check reads its input value at each evaluation; after the end of
its series, or without a series, it has no data. The target is always ready and obeys at
once, so a scale at one evaluation is the current count at the next. No server is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from autoscaler.core.durations import format_duration
from autoscaler.core.model import Decision, Policy, TargetStatus
from autoscaler.replay.harness import Replay, Value
from autoscaler.replay.series import Gap, SeriesValue
from autoscaler.replay.testfile import Expectation, PolicyTest, TestFile

STALE = "no data (the series is stale)"


@dataclass(frozen=True)
class Failure:
    """An expectation that the decision at its instant did not meet."""

    file: str
    test: str
    expectation: Expectation
    got: Decision

    def describe(self) -> str:
        """Test name, time and policy; expected and got; the decision's reasons."""
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        """`describe`'s four lines, a part's own line break left in its line (for the CLI
        to escape with the line's other control characters)."""
        e, d = self.expectation, self.got
        got = f"current {d.current}, desired {d.desired}, action {d.action.value}"
        reasons = " | ".join(d.reasons) or "(none)"
        return [
            f"{self.file}:{e.line}: test {self.test!r} at {format_duration(e.at)}, "
            f"policy {e.policy}",
            f"  expected: {e.describe()}",
            f"  got:      {got}",
            f"  reasons:  {reasons}",
        ]


@dataclass
class FileResult:
    """The outcome of one test file."""

    file: str
    tests: int = 0
    expectations: int = 0
    failures: list[Failure] = field(default_factory=list)
    failed_tests: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.failures


def run_file(test_file: TestFile) -> FileResult:
    """Run every test of a loaded test file."""
    result = FileResult(str(test_file.path))
    for test in test_file.tests:
        result.tests += 1
        result.expectations += len(test.expect)
        failures = run_test(test, test_file.policies, file=str(test_file.path))
        if failures:
            result.failed_tests.add(test.name)
        result.failures.extend(failures)
    return result


def run_test(test: PolicyTest, policies: Mapping[str, Policy], *, file: str) -> list[Failure]:
    """The failed expectations of one test (empty when it passes)."""
    failures: list[Failure] = []
    for name in dict.fromkeys(e.policy for e in test.expect):
        expectations = [e for e in test.expect if e.policy == name]
        decisions = _replay(test, policies[name], {e.at for e in expectations})
        for expectation in expectations:
            decision = decisions[expectation.at]
            if not _meets(expectation, decision):
                failures.append(Failure(file, test.name, expectation, decision))
    return failures


def _replay(test: PolicyTest, policy: Policy, wanted: set[timedelta]) -> dict[timedelta, Decision]:
    """The decisions at the `wanted` instants, evaluating every interval from 0s to the
    last of them, closed loop on the count (only the wanted ones are kept)."""
    until = max(wanted)
    interval = test.interval or policy.interval
    inputs = test.input_values.get(policy.name, {})
    count = test.start_count.get(policy.name, policy.min)
    replay = Replay(
        replace(policy, dry_run=False), start=test.start, count=count, keep_history=False
    )
    decisions: dict[timedelta, Decision] = {}
    for index in range(until // interval + 1):
        offset = index * interval
        values = {check: _value(series, index) for check, series in inputs.items()}
        evaluation = replay.evaluate(test.start + offset, values, TargetStatus(count=count))
        if offset in wanted:
            decisions[offset] = evaluation.decision
        if evaluation.scaled and evaluation.decision.desired is not None:
            count = evaluation.decision.desired
    return decisions


def _value(series: Sequence[SeriesValue], index: int) -> Value:
    if index >= len(series) or series[index] is Gap.MISSING:
        return None
    value = series[index]
    if value is Gap.STALE:
        return STALE
    assert isinstance(value, float)
    return value


def _meets(expectation: Expectation, decision: Decision) -> bool:
    e = expectation
    return (
        (e.desired is None or e.desired == decision.desired)
        and (e.action is None or e.action is decision.action)
        and (e.current is None or e.current == decision.current)
        and (e.reason is None or any(e.reason in reason for reason in decision.reasons))
    )
