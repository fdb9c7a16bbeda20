"""The service's process life: durable state across restarts, SIGTERM during work, startup
errors, and a scheduler that keeps slow and duplicate queries from hurting the others."""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autoscaler.adapters.state import SqliteStateStore
from autoscaler.core.model import AsgTarget
from tests.support.aws import MotoServer
from tests.support.faults import read_only
from tests.support.net import wait_until
from tests.support.prometheus import Metrics
from tests.support.service import FakePrometheus, ServiceProcess, policy_yaml

pytestmark = pytest.mark.integration


def test_a_restart_inside_the_cooldown_does_not_scale(
    service_factory: Callable[..., ServiceProcess],
    metrics: Metrics,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    asg = make_asg()
    query = f"sum({metrics.push('load', 4)})"
    policies = {"web": policy_yaml("web", asg=asg, query=query, cooldown="1h")}
    first = service_factory(
        prometheus_url=metrics.server.url, env=moto_server.env, policies=policies
    ).start()
    wait_until(lambda: moto_server.desired_capacity(asg) == 4, timeout=15, what="scale to 4")
    assert first.stop() == 0
    before = len(SqliteStateStore(first.state).history(policy="web", limit=1000))

    # A scale-down (a rising pass-through value may overtake the cooldown up, issue 11).
    metrics.push("load", 2)
    second = service_factory(
        prometheus_url=metrics.server.url, env=moto_server.env, state=first.state, policies=policies
    ).start()
    wait_until(
        lambda: len(second.decisions("web", limit=1000)) > before,
        timeout=15,
        what="a decision after the restart",
    )
    latest = second.decisions("web", limit=1)[0]
    assert (latest["action"], latest["current"], latest["desired"]) == ("hold", 4, 2)
    assert any("cooldown down" in reason for reason in latest["reasons"])
    assert second.policy("web")["cooldown_remaining"]["down_seconds"] > 3500
    assert moto_server.desired_capacity(asg) == 4
    assert second.stop() == 0


def test_a_restart_keeps_the_stabilization_window(
    service_factory: Callable[..., ServiceProcess],
    metrics: Metrics,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    asg = make_asg()
    query = f"sum({metrics.push('load', 6)})"
    policies = {
        "web": policy_yaml("web", asg=asg, query=query).replace(
            "stabilization: {up: 0s, down: 0s}", "stabilization: {up: 0s, down: 1h}"
        )
    }
    first = service_factory(
        prometheus_url=metrics.server.url, env=moto_server.env, policies=policies
    ).start()
    wait_until(lambda: moto_server.desired_capacity(asg) == 6, timeout=15, what="scale to 6")
    assert first.stop() == 0

    metrics.push("load", 1)  # would scale down to 1, but 6 was recommended within the hour
    second = service_factory(
        prometheus_url=metrics.server.url, env=moto_server.env, state=first.state, policies=policies
    ).start()
    wait_until(
        lambda: any("stabilization" in r for r in second.decisions("web", limit=1)[0]["reasons"]),
        timeout=15,
        what="a stabilized decision after the restart",
    )
    latest = second.decisions("web", limit=1)[0]
    assert (latest["current"], latest["desired"]) == (6, 6)
    assert moto_server.desired_capacity(asg) == 6
    assert second.stop() == 0


def test_sigterm_lets_the_scale_in_flight_finish_and_exits_0(
    service_factory: Callable[..., ServiceProcess],
    fake_prometheus: FakePrometheus,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    asg = make_asg()
    query = "sum(slow_load)"
    fake_prometheus.values[query] = 5
    fake_prometheus.delay = 2.0
    service = service_factory(
        prometheus_url=fake_prometheus.url,
        env=moto_server.env,
        args=["--query-timeout=10"],
        policies={"work": policy_yaml("work", asg=asg, query=query)},
    ).start()
    wait_until(lambda: fake_prometheus.count(query) >= 1, timeout=10, what="the query")

    started = time.monotonic()
    service.signal(signal.SIGTERM)
    assert service.wait_exit(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert moto_server.desired_capacity(asg) == 5

    store = SqliteStateStore(service.state)
    latest = store.history(policy="work", limit=1)[0]
    assert (latest.action.value, latest.desired) == ("up", 5)
    assert store.load("work", AsgTarget(asg=asg).key).last_scaled_at is not None
    store.close()
    assert "received SIGTERM" in service.log()


def _sighup(pid: int) -> str:
    """What SIGHUP does to the process now, from /proc: "ignored" (`SigIgn`, from the
    start of `run`), "caught" (`SigCgt`, the service's own handler) or "default" (ends it)."""
    bit = 1 << (signal.SIGHUP - 1)
    masks = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("SigIgn", "SigCgt"):
            masks[key] = int(value.split()[0], 16)
    if masks.get("SigIgn", 0) & bit:
        return "ignored"
    return "caught" if masks.get("SigCgt", 0) & bit else "default"


def test_a_reload_signal_during_startup_does_not_end_the_service(
    service_factory: Callable[..., ServiceProcess], fake_prometheus: FakePrometheus
) -> None:
    # The handler came only after the imports, the state and the controller: a SIGHUP
    # then (`systemctl reload` right after a start) killed the process, and systemd takes
    # death by SIGHUP for a clean exit: the controller stayed down. The window between
    # "ignored" and the service's handler can be a few milliseconds: /proc is watched
    # every millisecond, and a start whose window was missed is tried again.
    fake_prometheus.values["sum(load)"] = 1
    for _attempt in range(5):
        service = service_factory(
            prometheus_url=fake_prometheus.url,
            policies={"web": policy_yaml("web", asg="web", query="sum(load)")},
        ).start(wait=False)
        assert service.proc is not None
        pid, deadline, seen = service.proc.pid, time.monotonic() + 20, "default"
        while time.monotonic() < deadline and service.proc.poll() is None:
            seen = _sighup(pid)
            if seen != "default":
                break
            time.sleep(0.001)
        if seen == "ignored":
            break
        service.signal(signal.SIGTERM)  # started past the window: try again
        service.wait_exit(timeout=20)
    assert seen == "ignored", "SIGHUP was never ignored while the service started"
    service.signal(signal.SIGHUP)
    wait_until(lambda: "running 1 policy" in service.log(), timeout=60, what="the first pass")
    assert service.proc is not None and service.proc.poll() is None, service.log()
    service.signal(signal.SIGTERM)
    assert service.wait_exit(timeout=20) == 0


def test_a_slow_query_does_not_block_other_policies(
    service_factory: Callable[..., ServiceProcess],
    fake_prometheus: FakePrometheus,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    # The slow query outlasts the wait by far: the fast policy's three passes have 15 s
    # on a loaded machine (5 s left a pass 2 s, and a slow answer after 6 s ended the
    # window the assertion below has), and the slow one is still under way after them.
    fake_prometheus.delay = 30.0
    service = service_factory(
        prometheus_url=fake_prometheus.url,
        env=moto_server.env,
        args=["--query-timeout=40"],
        policies={
            "slow": policy_yaml("slow", asg=make_asg(), query="sum(slow_x)"),
            "fast": policy_yaml("fast", asg=make_asg(), query="sum(fast_x)"),
        },
    ).start()
    wait_until(lambda: len(service.decisions("fast")) >= 3, timeout=15, what="3 fast decisions")
    assert service.decisions("slow") == []
    assert service.policy("slow")["evaluating"] is True


def test_identical_queries_due_together_are_sent_once(
    service_factory: Callable[..., ServiceProcess],
    fake_prometheus: FakePrometheus,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    query = "sum(shared_load)"
    policies = {
        name: policy_yaml(name, asg=make_asg(), query=query, interval="1m")
        for name in ("one", "two", "three")
    }
    service = service_factory(
        prometheus_url=fake_prometheus.url, env=moto_server.env, policies=policies
    ).start()
    wait_until(lambda: len(service.decisions()) >= 3, timeout=10, what="three decisions")
    # All three are due at the same moment: normally one query is sent and two share it.
    # (A loaded machine may start one more than the 1 s reuse window later.)
    sent = fake_prometheus.count(query)
    shared = service.metric("autoscaler_queries_total", mode="shared")
    assert sent <= 2
    assert shared is not None
    assert sent + shared == 3


def _locked(state: Path) -> SqliteStateStore:
    return SqliteStateStore(state, exclusive=True)


def _corrupt(state: Path) -> None:
    state.write_bytes(b"this is not a SQLite database" * 100)


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        pytest.param("locked", "in use by another autoscaler", id="state-locked"),
        pytest.param("corrupt", "cannot use state database", id="state-unreadable"),
        pytest.param("unwritable", "the file cannot be written", id="state-unwritable"),
        pytest.param("token", "cannot read --api-token-file", id="token-file-missing"),
        pytest.param("listen", "cannot listen on", id="address-in-use"),
    ],
)
def test_startup_problems_exit_4_with_a_clear_message(
    service_factory: Callable[..., ServiceProcess],
    tmp_path: Path,
    arrange: str,
    message: str,
) -> None:
    args: list[str] = []
    holders: list[object] = []
    faults = contextlib.ExitStack()
    state = tmp_path / "state.db"
    if arrange == "locked":
        holders.append(_locked(state))
    elif arrange == "corrupt":
        _corrupt(state)
    elif arrange == "unwritable":  # e.g. owned by root after a restore: SQLite reads it
        SqliteStateStore(state, exclusive=True).close()
        faults.enter_context(read_only(state))
    elif arrange == "token":
        args.append(f"--api-token-file={tmp_path / 'missing-token'}")
    else:
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        holders.append(busy)
        args.append(f"--listen=127.0.0.1:{busy.getsockname()[1]}")
    service = service_factory(prometheus_url="http://127.0.0.1:9", state=state, args=args)
    with faults:
        service.start(wait=False)
        assert service.wait_exit(timeout=60) == 4
    assert message in service.log()
    if arrange == "corrupt":
        assert state.read_bytes().startswith(b"this is not a SQLite database")
    for holder in holders:
        holder.close()  # type: ignore[attr-defined]
