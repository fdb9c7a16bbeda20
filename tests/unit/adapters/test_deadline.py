"""The time a target call may take: its own retry deadline, cut short by the lease's.

Pure arithmetic on a fake clock: which attempt may start, with what timeout, which retry
is not sent, and what the error then says.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from autoscaler.adapters.deadline import Budget, after_unanswered
from autoscaler.adapters.send_by import sending_by
from autoscaler.errors import TargetBusy, TargetDeadline, TargetError, TargetUnavailable


class Clock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


def test_without_a_caller_deadline_the_call_keeps_its_own() -> None:
    clock = Clock()
    budget = Budget(seconds=10.0, clock=clock)
    assert budget.until == 510.0
    assert budget.timeout("SetDesiredCapacity", 5.0, sent=0) == 5.0
    clock.t = 509.0
    assert not budget.stop(0.5)  # a retry in 0.5 s starts before 510
    assert budget.stop(1.0) and not budget.cut  # its own deadline: not the caller's
    clock.t = 600.0
    budget.check("SetDesiredCapacity", sent=3)  # never refused: no caller's deadline


def test_a_lease_ending_first_bounds_the_retries_and_each_timeout() -> None:
    clock = Clock()
    budget = Budget(seconds=10.0, caller=503.0, clock=clock)
    assert budget.until == 503.0
    assert budget.timeout("SetDesiredCapacity", 10.0, sent=0) == 3.0
    clock.t = 502.5
    assert budget.timeout("SetDesiredCapacity", 10.0, sent=1) == pytest.approx(0.5)
    assert not budget.stop(0.4)
    assert budget.stop(0.5), "a retry that would start at the lease's end is not sent"
    assert budget.cut


def test_a_lease_ending_after_the_calls_own_deadline_changes_nothing() -> None:
    clock = Clock()
    budget = Budget(seconds=2.0, caller=520.0, clock=clock)
    assert budget.until == 502.0
    clock.t = 501.9
    assert budget.stop(0.5) and not budget.cut  # the usual "kept failing" error
    assert budget.timeout("GET", 5.0, sent=1) == 5.0  # only the lease bounds a timeout here


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        pytest.param(0, "^SetDesiredCapacity was not sent$", id="never-sent"),
        pytest.param(2, "^SetDesiredCapacity was not sent again after 2 attempts$", id="retry"),
    ],
)
def test_no_attempt_starts_once_the_lease_has_ended(sent: int, message: str) -> None:
    clock = Clock()
    budget = Budget(seconds=10.0, caller=501.0, clock=clock)
    clock.t = 501.0
    with pytest.raises(TargetDeadline, match=message) as raised:
        budget.timeout("SetDesiredCapacity", 5.0, sent=sent)
    assert isinstance(raised.value, TargetError)  # a failed scale call, as before
    assert (raised.value.attempts, raised.value.maybe_applied) == (sent, False)
    assert budget.cut


def test_a_retry_refused_at_the_lease_says_how_the_last_attempt_failed() -> None:
    # A back-off sleep that overshoots the lease: the retry is refused as it would start,
    # and the error still says what the attempts met (it said only "was not sent again").
    clock = Clock()
    budget = Budget(seconds=10.0, caller=501.0, clock=clock)
    clock.t = 501.2
    with pytest.raises(TargetDeadline) as raised:
        budget.check("SetDesiredCapacity", sent=2, last="HTTP 503: Throttling")
    assert str(raised.value) == (
        "SetDesiredCapacity was not sent again after 2 attempts (last: HTTP 503: Throttling)"
    )


def test_the_error_says_how_the_last_attempt_failed_and_whether_it_may_land() -> None:
    budget = Budget(seconds=10.0, caller=501.0, clock=Clock())
    refused = budget.over("POST", sent=3, last="HTTP 500: boom", unanswered=False)
    assert str(refused) == "POST was not sent again after 3 attempts (last: HTTP 500: boom)"
    assert not refused.maybe_applied
    timed_out = budget.over("POST", sent=1, last="ReadTimeout", unanswered=True)
    assert str(timed_out) == (
        "POST was not sent again after 1 attempt (last: ReadTimeout); the last got no "
        "answer in time, so it may still be applied"
    )
    assert timed_out.maybe_applied and timed_out.attempts == 1


def test_an_aws_request_under_a_deadline_times_out_by_it_and_is_not_sent_after_it() -> None:
    # botocore takes a per-request read timeout from the request's context (before-send).
    from autoscaler.adapters.deadline import monotonic
    from autoscaler.adapters.targets import aws_client

    def request() -> SimpleNamespace:
        return SimpleNamespace(context={"client_config": SimpleNamespace(read_timeout=10.0)})

    alone = request()
    aws_client.bound_request(alone)  # no deadline: the client's own timeout
    assert "read_timeout" not in alone.context
    with sending_by(monotonic() + 2.0):
        bounded = request()
        aws_client.bound_request(bounded)
        assert 1.0 < bounded.context["read_timeout"] <= 2.0
    with sending_by(monotonic() - 0.1), pytest.raises(TargetDeadline, match="not sent"):
        aws_client.bound_request(request())


def test_after_an_unanswered_attempt_any_later_error_says_the_write_may_have_landed() -> None:
    # A retry refused because the first request landed (busy: the deployment it started),
    # or cut by the deadline, or failing otherwise: the first may have been applied.
    busy = after_unanswered(TargetBusy("active deployment"), "the scale request for web")
    assert isinstance(busy, TargetUnavailable) and busy.maybe_applied
    assert str(busy) == (
        "the scale request for web: active deployment; an earlier attempt got no answer in "
        "time, so it may have been applied"
    )
    cut = after_unanswered(TargetDeadline("not sent again", attempts=2), "w")
    assert isinstance(cut, TargetDeadline) and cut.maybe_applied
    assert str(cut).endswith("so it may have been applied")
    kept = TargetUnavailable("timed out", maybe_applied=True)
    assert after_unanswered(kept, "w") is kept and str(kept) == "timed out"
