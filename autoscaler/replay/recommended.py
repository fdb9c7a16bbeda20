"""The policy we recommend for a request-rate workload, as YAML users can copy.

`autoscaler simulate` without a policy file runs exactly this text (with the per-instance
target computed from `--capacity` and `--target-utilization`), through the same loader as
every policy file, so what the README shows, what users copy and what is simulated cannot
drift apart (a test compares the README's copy with `recommended_yaml`).
"""

from __future__ import annotations

from autoscaler.core.model import Policy
from autoscaler.policy.loader import load_text

NAME = "recommended"

_TEMPLATE = """\
# The policy we recommend for a request-rate workload: one check on the request rate,
# per instance, at a target utilization. One instance serves {capacity} req/s at most;
# aiming at {utilization} of it leaves room for bursts while new instances start.
name: {name}
description: request rate per instance at {percent} % of an instance's capacity
target: {{type: aws-asg, asg: web}}
min: {min}
max: {max}
interval: 30s               # the default
checks:
  - name: load              # simulate: the `load` signal (req/s)
    query: sum(rate(http_requests_total{{job="web"}}[1m]))
    strategy: per-instance  # desired = ceil(rate / target): what the load needs now
    # req/s one instance should carry: capacity {capacity} × target utilization {utilization}
    target: {target}
cooldown:
  up: 0s                    # per-instance asks for what the load needs: no need to wait
  down: 5m                  # the default
stabilization:
  up: 0s
  down: 10m                 # scale in only to the highest need of the last 10 minutes
"""


def recommended_yaml(
    capacity: float, utilization: float, *, min_count: int = 1, max_count: int = 100
) -> str:
    """The recommended policy's YAML for instances of `capacity` req/s at `utilization`."""
    if not capacity > 0:
        raise ValueError("capacity must be > 0 requests per second")
    if not 0 < utilization <= 1:
        raise ValueError("target utilization must be in (0, 1]")
    return _TEMPLATE.format(
        name=NAME,
        capacity=_number(capacity),
        utilization=_number(utilization),
        percent=_number(round(utilization * 100, 6)),
        target=_number(capacity * utilization),
        min=min_count,
        max=max_count,
    )


def _number(x: float) -> str:
    """A number as YAML would want it written: no float noise, no trailing zeros."""
    return f"{x:.10g}"


def recommended_policy(
    capacity: float, utilization: float, *, min_count: int = 1, max_count: int = 100
) -> Policy:
    """The recommended policy, loaded from `recommended_yaml` like any policy file."""
    text = recommended_yaml(capacity, utilization, min_count=min_count, max_count=max_count)
    (policy,) = load_text(text, file=f"<{NAME} policy>")
    return policy
