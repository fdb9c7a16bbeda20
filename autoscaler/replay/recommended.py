"""The policy we recommend for a request-rate workload, as YAML users can copy.

`autoscaler simulate` without a policy file runs exactly this text (with the per-instance
target computed from `--capacity` and `--target-utilization`), through the same loader as
every policy file, so what the README shows, what users copy and what is simulated cannot
drift apart (a test compares the README's copy with `recommended_yaml`).
"""

from __future__ import annotations

from datetime import timedelta

from autoscaler.core.durations import format_duration
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
interval: 15s               # see a burst as soon as the HPA does
provisioning: {provisioning:<13} # from a scale-up to the new instances serving
checks:
  - name: load              # simulate: the `load` signal (req/s)
    query: sum(rate(http_requests_total{{job="web"}}[1m]))
    strategy: per-instance  # desired = ceil(rate / target): what the load needs now
    # req/s one instance should carry: capacity {capacity} × target utilization {utilization}
    target: {target}
    tolerance: {tolerance:<12} # no change while within {tolerance_percent} % of the target
    forecast:               # act on max(observed, its forecast provisioning + 15s ahead)
      noise_band: {noise_band:<9} # no scale-out within the forecast's error, ≤ {noise_percent} %
cooldown:
  up: 0s                    # per-instance asks for what the load needs: no need to wait
  down: 0s                  # the stabilization window below paces scale-in
stabilization:
  up: 0s
  down: {down:<19} # scale in only to the highest need of the last {down_words}
"""

# Chosen on the first half of each shared trace (`python -m bench --half 1`); see the
# README's Development section for the numbers on the second halves.
TOLERANCE = 0.05
# A scale-out waits while the value is within the forecast's recent error above the
# current count's target, at most this (`core.noise`; docs/measurements.md: what else was tried).
NOISE_BAND = 0.25
DOWN_WINDOW = "5m"
DOWN_WORDS = "5 minutes"


def recommended_yaml(
    capacity: float,
    utilization: float,
    *,
    min_count: int = 1,
    max_count: int = 100,
    provisioning: float = 120.0,
) -> str:
    """The recommended policy's YAML for instances of `capacity` req/s at `utilization`,
    `provisioning` seconds from a scale-up to serving."""
    if not capacity > 0:
        raise ValueError("capacity must be > 0 requests per second")
    if not 0 < utilization <= 1:
        raise ValueError("target utilization must be in (0, 1]")
    if not provisioning >= 0:
        raise ValueError("provisioning must be >= 0 seconds")
    return _TEMPLATE.format(
        name=NAME,
        capacity=_number(capacity),
        utilization=_number(utilization),
        percent=_number(round(utilization * 100, 6)),
        target=_number(capacity * utilization),
        min=min_count,
        max=max_count,
        provisioning=format_duration(timedelta(seconds=provisioning)),
        tolerance=_number(TOLERANCE),
        tolerance_percent=_number(TOLERANCE * 100),
        noise_band=_number(NOISE_BAND),
        noise_percent=_number(NOISE_BAND * 100),
        down=DOWN_WINDOW,
        down_words=DOWN_WORDS,
    )


def _number(x: float) -> str:
    """A number as YAML would want it written: no float noise, no trailing zeros, and an
    exponent only with a decimal point (`7.0e-06`: YAML 1.1 reads `7e-06` as text)."""
    text = f"{x:.10g}"
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        return f"{mantissa}.0e{exponent}"
    return text


def recommended_policy(
    capacity: float,
    utilization: float,
    *,
    min_count: int = 1,
    max_count: int = 100,
    provisioning: float = 120.0,
) -> Policy:
    """The recommended policy, loaded from `recommended_yaml` like any policy file."""
    text = recommended_yaml(
        capacity,
        utilization,
        min_count=min_count,
        max_count=max_count,
        provisioning=provisioning,
    )
    (policy,) = load_text(text, file=f"<{NAME} policy>")
    return policy
