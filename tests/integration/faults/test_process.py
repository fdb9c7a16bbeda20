"""The controller process itself killed: SIGKILL inside a cooldown, then a restart.

No handler runs on SIGKILL: no checkpoint, no close. What was committed before is all the
next process has, and it must be enough: the scale made before the kill is on record, so
the restart honours its cooldown instead of scaling again (moto keeps no scaling
activities, so the controller's own record is the only one).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tests.integration.faults.harness import (
    Watched,
    asg_count,
    held_through_fault,
    reasons,
    recorded,
)
from tests.support.aws import MotoServer
from tests.support.net import wait_until
from tests.support.prometheus import Metrics
from tests.support.service import ServiceProcess, policy_yaml

pytestmark = pytest.mark.integration


def test_a_sigkill_inside_the_cooldown_then_a_restart_neither_scales_again_nor_forgets(
    service_factory: Callable[..., ServiceProcess],
    metrics: Metrics,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    asg = make_asg(desired=2)
    query = f"sum({metrics.push('load', 4)})"
    policies = {"web": policy_yaml("web", asg=asg, query=query, cooldown="1h")}
    first = service_factory(
        prometheus_url=metrics.server.url, env=moto_server.env, policies=policies
    ).start()
    wait_until(lambda: moto_server.desired_capacity(asg) == 4, timeout=15, what="2 -> 4")
    metrics.push("load", 1)  # a scale-in (a rising need would not wait for the cooldown up)
    wait_until(  # inside the cooldown, evaluating: the moment to pull the plug
        lambda: "cooldown down" in reasons(first.decisions("web", limit=1)[0]),
        timeout=15,
        what="a hold for the cooldown",
    )
    first.signal(signal.SIGKILL)
    assert first.wait_exit(timeout=10) == -signal.SIGKILL

    second = service_factory(
        prometheus_url=metrics.server.url,
        env=moto_server.env,
        state=first.state,
        policies=policies,
    ).start()
    watched = Watched(service=second, policy="web", count=asg_count(moto_server, asg), start=4)
    held_through_fault(watched, "cooldown down")
    recorded(watched)  # the scale to 4 survived the kill
    assert second.policy("web")["cooldown_remaining"]["down_seconds"] > 3500
    assert second.stop() == 0
