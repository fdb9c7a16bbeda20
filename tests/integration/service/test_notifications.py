"""The service's notifications end to end: what a running service posts to its webhooks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.aws import MotoServer
from tests.support.net import wait_until
from tests.support.service import (
    FakePrometheus,
    ServiceProcess,
    WebhookReceiver,
    create_asg,
    policy_yaml,
)

pytestmark = pytest.mark.integration


def test_a_dry_run_would_be_action_is_notified_again_when_it_comes_back(
    service_factory: Callable[..., ServiceProcess],
    moto_server: MotoServer,
    fake_prometheus: FakePrometheus,
    webhook_receiver: WebhookReceiver,
) -> None:
    # Only decisions that change the target reach the notifier: the `none` between two
    # bursts never told it the first would-be 2 -> 3 had gone, so the second was not posted.
    asg = create_asg(moto_server.url, desired=2)
    fake_prometheus.values["load_q"] = 3
    service = service_factory(
        prometheus_url=fake_prometheus.url,
        env=moto_server.env,
        policies={"p": policy_yaml("p", asg=asg, query="load_q", interval="1s")},
        args=["--dry-run", f"--notify-url={webhook_receiver.url}/hook"],
    ).start()

    def after(action: str, count: int) -> Callable[[], bool]:
        """True once `count` decisions of `action` came after those made so far."""
        seen = len(service.decisions("p", limit=1000))

        def done() -> bool:
            decisions = service.decisions("p", limit=1000)  # newest first
            return [d["action"] for d in decisions[: len(decisions) - seen]].count(action) >= count

        return done

    wait_until(lambda: len(webhook_receiver.bodies) == 1, timeout=15, what="the first notice")
    fake_prometheus.values["load_q"] = 2  # the load back to normal: `none`
    wait_until(after("none", 2), timeout=15, what="two decisions of none")
    fake_prometheus.values["load_q"] = 3  # the next burst
    wait_until(after("up", 2), timeout=15, what="two would-be scale-ups")
    wait_until(lambda: len(webhook_receiver.bodies) >= 2, timeout=15, what="the second notice")

    texts = [body["text"] for body in webhook_receiver.bodies]
    assert len(texts) == 2, texts  # once per burst, not at every interval
    assert all("[dry-run]" in t and "up from 2 to 3" in t for t in texts)
    assert moto_server.desired_capacity(asg) == 2
