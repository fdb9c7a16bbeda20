"""The fault matrix's yardstick: the four properties every case is held to, asked the same way.

A case injects one fault into a running `autoscaler run`, then:

1. **No scale-in on bad data**: while the fault lasts, the target never drops below the
   count it had, and no decision of the policy is an executed scale-in.
2. **No scale that could not be recorded**: the target's count is the one the durable
   state (the SQLite file, read as a restart reads it) says the last scaling action set.
3. **The loop goes on**: the policy is evaluated again and again during the fault, the
   process stays up, and once the fault is healed the same loop acts.
4. **The message is clear**: every evaluation during the fault says why, in words that
   name the fault, in the decision's reasons (what the API, the log and `plan` show) and
   in the service's log line for that decision.

`held_through_fault` asks 1, 3 and 4 while the fault lasts; `acts_once_healed` asks 3 once
it is gone; `recorded` asks 2 at any moment the service is quiet about the target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from autoscaler.adapters.state import SqliteStateStore
from autoscaler.core.model import Action, Decision
from tests.support.aws import MotoServer
from tests.support.net import wait_until
from tests.support.service import ServiceProcess

SCALING = (Action.UP, Action.DOWN)


@dataclass(frozen=True)
class Watched:
    """One policy of a running service and a way to read its target's count from the server."""

    service: ServiceProcess
    policy: str
    count: Callable[[], int]
    start: int  # the target's count when the fault was injected


def asg_count(moto: MotoServer, asg: str) -> Callable[[], int]:
    """A reader of the ASG's DesiredCapacity in moto, with one client for all its reads."""
    client = moto.client()

    def count() -> int:
        groups = client.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])
        return groups["AutoScalingGroups"][0]["DesiredCapacity"]

    return count


def reasons(decision: Mapping[str, Any]) -> str:
    """A decision's reasons as one text (as the API returns the decision)."""
    return " | ".join(decision.get("reasons") or [])


def durable_history(service: ServiceProcess, policy: str) -> list[Decision]:
    """The policy's decisions as the state file holds them (newest first): what a restart
    would know. Read-only: the running service keeps its lock."""
    store = SqliteStateStore(service.state, read_only=True)
    try:
        return store.history(policy=policy, limit=10_000)
    finally:
        store.close()


def held_through_fault(
    watched: Watched,
    message: str,
    *,
    evaluations: int = 2,
    since: datetime | None = None,
    timeout: float = 45,
) -> list[dict[str, Any]]:
    """Properties 1, 3 and 4 while the fault lasts; the policy's decisions back (newest first).

    Waits for `evaluations` decisions in a row, the latest ones, that say `message`,
    reading the target's count at every poll: it must never drop below `watched.start`.
    `since`: when the fault began (decisions before it are not the fault's).
    """
    counts: list[int] = []
    service, policy = watched.service, watched.policy

    def latest_say_it() -> bool:
        counts.append(watched.count())
        latest = service.decisions(policy, limit=evaluations)
        return len(latest) == evaluations and all(message in reasons(d) for d in latest)

    waiting(
        watched,
        latest_say_it,
        timeout=timeout,
        what=f"{evaluations} evaluations of {policy!r} in a row saying {message!r}",
    )
    counts.append(watched.count())
    decisions = [
        d
        for d in service.decisions(policy, limit=1000)
        if since is None or datetime.fromisoformat(d["time"]) >= since
    ]
    # 1. no scale-in on bad data
    assert min(counts) >= watched.start, (policy, counts)
    assert not [d for d in decisions if d["action"] == "down"], decisions
    # 3. the loop goes on: evaluated again and again, the process up and answering
    assert service.proc is not None and service.proc.poll() is None, service.log()[-3000:]
    assert service.get("/healthz").status_code == 200
    # 4. the message is clear, where an operator looks: the decision and its log line
    logged = [
        r["decision"]
        for r in service.log_records()
        if isinstance(r.get("decision"), dict) and r["decision"].get("policy") == policy
    ]
    assert any(message in reasons(d) for d in logged), (message, logged[-3:])
    return decisions


def acts_once_healed(watched: Watched, desired: int, *, timeout: float = 30) -> None:
    """Property 3 once the fault is gone: the same loop brings the target to `desired`."""
    waiting(
        watched,
        lambda: watched.count() == desired,
        timeout=timeout,
        what=f"{watched.policy!r} to bring its target to {desired} once healed",
    )


def recorded(watched: Watched) -> None:
    """Property 2: the target's count is what the durable state says the last scaling
    action set (`watched.start` when there was none): no scale happened unrecorded."""

    def agree() -> bool:
        history = durable_history(watched.service, watched.policy)
        scaled = [d for d in history if d.action in SCALING]
        expected = scaled[0].desired if scaled else watched.start
        return watched.count() == expected

    # The record is written just after the scale call returns: allow it a moment.
    waiting(watched, agree, timeout=30, what=f"the durable record of {watched.policy!r} to agree")


def waiting(watched: Watched, predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """`wait_until`, failing with the policy's latest decision: what it did instead.

    Polls five times a second: each poll asks the service's API and the target's server,
    and the service evaluates every second at most.
    """
    try:
        wait_until(predicate, timeout=timeout, interval=0.2, what=what)
    except TimeoutError as exc:
        latest = _latest(watched.service, watched.policy)
        raise AssertionError(f"{exc}; count {watched.count()}; latest decision: {latest}") from None


def _latest(service: ServiceProcess, policy: str) -> str:
    try:
        latest = service.decisions(policy, limit=1)
    except Exception as exc:  # for a failure message only
        return f"unreadable: {exc}"
    if not latest:
        return "no decision yet"
    d = latest[0]
    return f"{d['action']} {d['current']} -> {d['desired']}: {reasons(d)}"
