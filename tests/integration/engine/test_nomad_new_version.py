"""A Nomad job re-registered between the evaluation's read and its scale call: the scale
request carries the job modify index it was decided on, Nomad refuses it, and the
evaluation holds, says why, starts no cooldown and is no failure; the next one reads the
new version and scales from there. The real adapter talks to the Nomad API stand-in over
real HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoscaler.adapters.state import MemoryStateStore
from autoscaler.adapters.targets.nomad import NomadScaler
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.core.model import Action, NomadTarget
from autoscaler.engine.reconciler import Reconciler
from tests.integration.engine.test_lease_deadline import Load, _policy
from tests.support.nomad_api import NomadApiStandIn

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_a_job_re_registered_before_the_scale_holds_this_tick_and_scales_the_next(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 2})
    target = NomadTarget(job="chat", group="web")
    scaler = NomadScaler(target, NomadSettings(address=nomad_api.address, deadline=2.0))
    state = MemoryStateStore()
    reconciler = Reconciler(
        source=Load(), targets=lambda _ref: scaler, state=state, clock=lambda: T0
    )
    policy = _policy(target)
    # A deploy (`nomad job run`, count = 3) lands between the read and the scale request.
    nomad_api.before_next_scale = lambda: nomad_api.new_version("chat", {"web": 3})

    held = reconciler.evaluate(policy)

    assert held.decision.action is Action.HOLD
    assert held.error is None and held.error_kind is None  # a passing state, no failure
    assert not held.scaled
    reason = held.decision.reasons[-1]
    assert reason.startswith("target busy, not scaled: job 'chat' changed since it was read")
    assert "conflicting job modify index" in reason  # Nomad's own words
    assert state.load(policy.name, target.key).last_scaled_at is None  # no cooldown
    assert nomad_api.group_count("chat", "web") == 3

    scaled = reconciler.evaluate(policy)

    assert scaled.scaled
    assert (scaled.decision.current, scaled.decision.desired) == (3, 6)
    assert nomad_api.group_count("chat", "web") == 6
