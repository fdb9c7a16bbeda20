"""Two real `autoscaler run --ha` replicas against one real PostgreSQL, scaling a moto ASG.

The fault cases of high availability: the leader SIGKILLed, paused (SIGSTOP) and resumed
after losing its lease, stopped with SIGTERM (handover), the database restarted, the
database unreachable for longer than the lease, and a replica whose clock is an hour off.
Every test also checks the two rules that must hold whatever happens: no policy is ever
acted on by two replicas at once, and the shared history holds every decision once.

Short leases and intervals (flags) keep each case to a few seconds.
"""

from __future__ import annotations

import glob
import itertools
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest

from tests.support.aws import MotoServer, serve_aws_proxy
from tests.support.net import wait_until
from tests.support.postgres import Database, PostgresServer
from tests.support.service import FakePrometheus, ServiceProcess, policy_yaml

pytestmark = pytest.mark.integration

QUERY = "sum(load)"
TTL = 3.0  # seconds; the policy interval is 1 s
# Where Debian puts it for this machine's architecture (what scripts/bootstrap checks).
FAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), "")


def web(asg: str, *, cooldown: str = "0s", query: str = QUERY) -> dict[str, str]:
    return {"web": policy_yaml("web", asg=asg, query=query, cooldown=cooldown)}


class Replicas:
    """Starts `autoscaler run --ha` replicas on one database and reads what they did."""

    def __init__(
        self,
        factory: Callable[..., ServiceProcess],
        db: Database,
        prometheus: FakePrometheus,
        env: Mapping[str, str],
    ) -> None:
        self.factory = factory
        self.db = db
        self.prometheus = prometheus
        self.env = dict(env)
        self.started: list[ServiceProcess] = []

    def start(
        self,
        name: str,
        policies: Mapping[str, str],
        *,
        ttl: float = TTL,
        env: Mapping[str, str] | None = None,
        role: str | None = None,
    ) -> ServiceProcess:
        """Start replica `name`; with `role`, wait until it reports it."""
        replica = self.factory(
            prometheus_url=self.prometheus.url,
            env={**self.env, **(env or {})},
            state=self.db.dsn,
            policies=policies,
            args=[
                "--ha",
                f"--lease-ttl={ttl}",
                f"--replica-id={name}",
                f"--state-password-file={self.db.server.password_file}",
            ],
        ).start()
        self.started.append(replica)
        if role is not None:
            wait_until(lambda: role_of(replica) == role, timeout=15, what=f"{name} {role}")
        return replica

    def db_now(self) -> datetime:
        """The database's time (the clock of the lease and of the replicas' decisions)."""
        found = self.db.query("SELECT now()")[0][0]
        assert isinstance(found, datetime)
        return found

    def history(self) -> list[tuple[str, datetime, str, int]]:
        """(policy, time, holder, epoch) of every recorded decision, in order."""
        rows = self.db.query(
            "SELECT policy, time, holder, epoch FROM autoscaler_decisions ORDER BY id"
        )
        found = []
        for p, t, h, e in rows:
            assert isinstance(t, datetime) and isinstance(e, int)
            found.append((str(p), t, str(h), e))
        return found

    def check_invariants(self) -> None:
        """No two replicas acted on a policy at once; every decision recorded exactly once."""
        acted = [(r, d) for r in self.started for d in decisions_logged(r) if not fenced(d)]
        spans = sorted(
            (datetime.fromisoformat(d["time"]), datetime.fromisoformat(rec["time"]), r.args[2])
            for r, rec in acted
            for d in [rec["decision"]]
        )
        for (_, end, who), (start, _, other) in itertools.pairwise(spans):
            if who != other:
                assert start >= end, f"{who} and {other} evaluated at once: {spans}"

        history = self.history()
        keys = [(p, t) for p, t, _, _ in history]
        assert len(keys) == len(set(keys)), "a decision was recorded twice"
        # A decision the database could not take while it was down is kept in memory and
        # written once it is back, unless another replica has taken over meanwhile.
        durable = [d for _, d in acted if not _unrecorded(d)]
        logged = {(d["decision"]["policy"], _time(d["decision"]["time"])) for d in durable}
        assert logged <= set(keys), f"decisions missing from the history: {logged - set(keys)}"
        epochs = [e for _, _, _, e in sorted(history, key=lambda row: row[1])]
        assert epochs == sorted(epochs), "an older leader wrote after a newer one"


def _downs(replica: ServiceProcess) -> list[dict[str, Any]]:
    return [d for d in map(_decision, decisions_logged(replica)) if d["action"] == "down"]


def _decision(record: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = record["decision"]
    return found


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def decisions_logged(replica: ServiceProcess) -> list[dict[str, Any]]:
    return [r for r in replica.log_records() if r.get("logger") == "autoscaler.decisions"]


def _said(record: dict[str, Any], start: str) -> bool:
    return any(r.startswith(start) for r in record["decision"]["reasons"])


def _unrecorded(record: dict[str, Any]) -> bool:
    """A decision made while the database took no writes: kept in memory (its change held
    until it could be recorded), written later unless another replica took over."""
    return _said(record, "state not durable") or any(
        "could not be recorded first (state not durable" in r for r in record["decision"]["reasons"]
    )


def fenced(record: dict[str, Any]) -> bool:
    """A decision made by a replica that had lost the lease (neither applied nor written)."""
    return any(
        r.startswith(("not scaled: ", "not recorded: ", "not recorded yet: "))
        for r in record["decision"]["reasons"]
    )


def role_of(replica: ServiceProcess) -> str | None:
    try:
        role: str = replica.get("/v1/leader").json()["role"]
    except Exception:
        return None
    return role


def messages(replica: ServiceProcess) -> list[str]:
    return [str(r.get("message", "")) for r in replica.log_records()]


@pytest.fixture
def replicas(
    service_factory: Callable[..., ServiceProcess],
    postgres_db: Database,
    fake_prometheus: FakePrometheus,
    moto_server: MotoServer,
) -> Iterator[Replicas]:
    group = Replicas(service_factory, postgres_db, fake_prometheus, moto_server.env)
    yield group
    for replica in group.started:
        if replica.proc is not None and replica.proc.poll() is None:
            replica.signal(signal.SIGCONT)  # a paused one must be able to die


def test_the_standby_takes_over_a_killed_leader_and_honours_its_cooldown(
    replicas: Replicas, moto_server: MotoServer, make_asg: Callable[..., str]
) -> None:
    asg = make_asg(desired=2)
    policies = web(asg, cooldown="7s")
    replicas.prometheus.values[QUERY] = 2
    a = replicas.start("a", policies, role="leader")
    b = replicas.start("b", policies, role="standby")
    replicas.prometheus.values[QUERY] = 4
    wait_until(lambda: moto_server.desired_capacity(asg) == 4, timeout=30, what="a: 2 -> 4")
    assert b.metric("autoscaler_leader") == 0 and a.metric("autoscaler_leader") == 1
    assert not decisions_logged(b), "a standby evaluates nothing"
    # ...but it answers every read, from the shared database, and says what it is.
    assert b.get("/readyz").json() == {"ready": True, "reason": None, "role": "standby"}
    listed = b.get("/v1/policies").json()
    assert listed["role"] == "standby"
    assert listed["policies"][0]["last_decision"]["desired"] == 4
    assert listed["policies"][0]["cooldown_remaining"]["up_seconds"] > 0
    assert b.decisions("web")[0]["desired"] == 4
    assert b.get("/v1/leader").json()["leader"] == "a"
    refused = b.post("/v1/policies/web/evaluate")
    assert refused.status_code == 503 and "standby" in refused.json()["detail"]
    assert "Retry-After" not in refused.headers  # retrying here helps only after a failover

    # Less load: a scale-in, which waits for a's cooldown (a rising need would not, #11).
    replicas.prometheus.values[QUERY] = 1
    a.kill()  # SIGKILL: no handover, the lease has to expire
    killed = replicas.db_now()
    wait_until(lambda: role_of(b) == "leader", timeout=TTL + 20, what="b takes over")
    wait_until(lambda: bool(decisions_logged(b)), timeout=20, what="b's first decision")
    first = decisions_logged(b)[0]
    # Failover within the TTL plus one interval, in the database's time (which both the
    # lease and b's decisions use), with a little slack for a loaded machine.
    assert (_time(first["decision"]["time"]) - killed).total_seconds() < TTL + 1 + 1.5
    assert first["decision"]["action"] == "hold", first
    assert any(r.startswith("cooldown down:") for r in first["decision"]["reasons"]), first
    assert moto_server.desired_capacity(asg) == 4

    wait_until(lambda: moto_server.desired_capacity(asg) == 1, timeout=15, what="b: 4 -> 1")
    wait_until(lambda: _downs(b) != [], timeout=20, what="b's decision logged")
    up_a = next(
        _time(d["time"]) for d in map(_decision, decisions_logged(a)) if d["action"] == "up"
    )
    down_b = _time(_downs(b)[0]["time"])
    assert (down_b - up_a).total_seconds() >= 7  # not before a's cooldown ended
    assert b.get("/readyz").json()["role"] == "leader"
    replicas.check_invariants()
    holders = [h for _, _, h, _ in replicas.history()]
    assert holders[0] == "a" and holders[-1] == "b"
    assert b.stop() == 0


def test_a_paused_leader_that_lost_its_lease_neither_scales_nor_writes(
    replicas: Replicas,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    asg = make_asg(desired=2)
    slow = "sum(load_slow)"
    policies = web(asg, query=slow)
    replicas.prometheus.values[slow] = 2
    replicas.prometheus.delay = 0.5  # below --query-timeout
    with serve_aws_proxy(moto_server.url) as a_aws:
        a = replicas.start("a", policies, env=a_aws.env, role="leader")
        b = replicas.start("b", policies, role="standby")
        wait_until(lambda: len(decisions_logged(a)) >= 1, timeout=30, what="a evaluates")

        # Pause a while its query is in flight: it wakes up with a decision to apply.
        asked = replicas.prometheus.count(slow)
        wait_until(lambda: replicas.prometheus.count(slow) > asked, timeout=20, what="a query")
        a.signal(signal.SIGSTOP)
        paused = replicas.db_now()
        replicas.prometheus.values[slow] = 8
        wait_until(lambda: moto_server.desired_capacity(asg) == 8, timeout=TTL + 20, what="b")
        assert role_of(b) == "leader"
        wait_until(lambda: bool(decisions_logged(b)), timeout=20, what="b's decision logged")
        took_over = _time(decisions_logged(b)[0]["decision"]["time"]) - paused
        assert took_over.total_seconds() < TTL + 1 + 1.5  # TTL + one interval (+ slack)
        written = len(replicas.history())
        calls_before = a_aws.count("SetDesiredCapacity")

        a.signal(signal.SIGCONT)
        wait_until(lambda: any(fenced(d) for d in decisions_logged(a)), timeout=30, what="a")
        wait_until(lambda: role_of(a) == "standby", timeout=30, what="a steps down")
        time.sleep(1.5)  # a has every chance to act on what it decided before the pause
        assert a_aws.count("SetDesiredCapacity") == calls_before == 0
        last = next(d for d in decisions_logged(a) if fenced(d))["decision"]
        assert (last["current"], last["desired"], last["action"]) == (2, 8, "hold"), last
        assert any("no longer current" in r or "lease" in r for r in last["reasons"]), last
        assert all(h == "b" for _, _, h, _ in replicas.history()[written:])
        assert any("is no longer the leader" in m for m in messages(a))
        assert a.metric("autoscaler_leader") == 0
        # Whenever the next scrape comes, the loss shows: `autoscaler_leader` may miss it.
        assert a.metric("autoscaler_leader_transitions_total", transition="taken_over") == 1
        assert b.metric("autoscaler_leader_transitions_total", transition="elected") == 1
    replicas.check_invariants()


def test_sigterm_on_the_leader_hands_over_at_once(
    replicas: Replicas, moto_server: MotoServer, make_asg: Callable[..., str]
) -> None:
    asg = make_asg(desired=2)
    policies = web(asg)
    replicas.prometheus.values[QUERY] = 3
    a = replicas.start("a", policies, ttl=20, role="leader")
    b = replicas.start("b", policies, ttl=20, role="standby")
    wait_until(lambda: moto_server.desired_capacity(asg) == 3, timeout=30, what="a: 2 -> 3")
    stopped = time.monotonic()
    assert a.stop() == 0
    # Renewed every 20/3 s, a's lease had 13 s left at the least when it was stopped: b
    # leading within 10 s (a's own exit included, which a busy machine may take seconds
    # over) is the handover, not the lease running out.
    wait_until(lambda: role_of(b) == "leader", timeout=10, what="b takes over")
    assert time.monotonic() - stopped < 10  # not the 20 s lease (13 s left at the least)
    assert any("released the leader lease" in m for m in messages(a))
    replicas.prometheus.values[QUERY] = 5
    wait_until(lambda: moto_server.desired_capacity(asg) == 5, timeout=30, what="b: 3 -> 5")
    replicas.check_invariants()


def test_a_replica_with_a_skewed_clock_reads_the_leaders_cooldown_right(
    replicas: Replicas, moto_server: MotoServer, make_asg: Callable[..., str]
) -> None:
    # b's wall clock is an hour ahead. Were it used, a's 60 s cooldown would look long over.
    asg = make_asg(desired=2)
    policies = web(asg, cooldown="60s")
    replicas.prometheus.values[QUERY] = 4
    a = replicas.start("a", policies, role="leader")
    skewed = {"LD_PRELOAD": FAKETIME, "FAKETIME": "+1h", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    b = replicas.start("b", policies, env=skewed, role="standby")
    assert _wall_clock_of(b) - time.time() > 3000, "libfaketime did not skew b's clock"
    wait_until(lambda: moto_server.desired_capacity(asg) == 4, timeout=30, what="a: 2 -> 4")
    # Without --ha, a second controller on the database is refused, not made a standby.
    single = replicas.factory(
        prometheus_url=replicas.prometheus.url,
        env=replicas.env,
        state=replicas.db.dsn,
        policies=policies,
        args=[f"--lease-ttl={TTL}", f"--state-password-file={replicas.db.server.password_file}"],
    ).start(wait=False)
    assert single.wait_exit(timeout=60) == 4
    assert "in use by another autoscaler (replica a" in single.log()

    replicas.prometheus.values[QUERY] = 1  # a scale-in, which waits for a's cooldown
    a.kill()
    wait_until(lambda: bool(decisions_logged(b)), timeout=TTL + 5, what="b's first decision")
    first = decisions_logged(b)[0]["decision"]
    assert first["action"] == "hold"
    assert any(r.startswith("cooldown down:") for r in first["reasons"]), first
    assert abs((_time(first["time"]) - replicas.history()[0][1]).total_seconds()) < 30
    assert moto_server.desired_capacity(asg) == 4
    cooldown = b.policy("web")["cooldown_remaining"]["down_seconds"]
    assert 0 < cooldown <= 60  # an hour ahead, b would see no cooldown left


def _wall_clock_of(replica: ServiceProcess) -> float:
    """The replica's own wall clock, as its log records show it."""
    return datetime.fromisoformat(replica.log_records()[-1]["time"]).timestamp()


def test_a_database_restart_keeps_the_leader_and_a_longer_outage_stops_all_scaling(
    make_postgres: Callable[[], PostgresServer],
    service_factory: Callable[..., ServiceProcess],
    fake_prometheus: FakePrometheus,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    server = make_postgres()
    replicas = Replicas(service_factory, server.database(), fake_prometheus, moto_server.env)
    asg = make_asg(desired=2)
    policies = web(asg)
    fake_prometheus.values[QUERY] = 2
    a = replicas.start("a", policies, role="leader")
    b = replicas.start("b", policies, role="standby")
    epoch = a.get("/v1/leader").json()["epoch"]

    # A restart shorter than the lease: the leader keeps its epoch and goes on.
    server.stop()
    server.start()
    fake_prometheus.values[QUERY] = 5
    wait_until(lambda: moto_server.desired_capacity(asg) == 5, timeout=30, what="a: 2 -> 5")
    assert role_of(a) == "leader" and role_of(b) == "standby"
    assert a.get("/v1/leader").json()["epoch"] == epoch
    wait_until(lambda: a.get("/readyz").status_code == 200, timeout=30, what="a ready")

    # Unreachable for longer than the lease: nobody can hold it, so nobody scales.
    server.stop()
    fake_prometheus.values[QUERY] = 8  # both would scale, if they acted
    wait_until(lambda: {role_of(a), role_of(b)} == {"standby"}, timeout=TTL + 3, what="no leader")
    assert a.metric("autoscaler_leader") == 0
    ready = a.get("/readyz")
    assert ready.status_code == 503 and "lease" in ready.json()["reason"], ready.json()
    time.sleep(TTL)  # longer than the lease: nobody may act meanwhile
    assert moto_server.desired_capacity(asg) == 5
    assert any("no longer the leader" in m for m in messages(a))

    server.start()
    wait_until(lambda: moto_server.desired_capacity(asg) == 8, timeout=15, what="5 -> 8")
    assert [role_of(a), role_of(b)].count("leader") == 1
    replicas.check_invariants()
