"""What a simulated check's query returns: load, load per instance, utilization, p95 latency.

A simulated fleet has no Prometheus, so each check of a policy is mapped to one of these
signals, computed from the load the controller observed and the instances ready to serve
it. Latency comes from the M/M/c queue (Poisson arrivals, exponential service, one FIFO
queue in front of `c` instances that each serve `capacity` requests per second): the
Erlang C formula gives the chance to wait, and the sojourn time's distribution its 95th
percentile. An overloaded queue has no finite latency; like the top bucket of a latency
histogram, the signal then reads `LATENCY_CAP_SERVICE_TIMES` mean service times.
"""

from __future__ import annotations

import math

SIGNALS = ("load", "per_instance", "utilization", "latency_p95")
LATENCY_CAP_SERVICE_TIMES = 100.0


def signal_value(signal: str, load: float, ready: int, capacity: float) -> float | None:
    """The value of `signal` for `load` req/s on `ready` instances of `capacity` req/s each.

    None means "no data" (a per-instance figure with no instance ready), which the
    controller treats as a failed check, exactly as a query returning no series.
    """
    if signal == "load":
        return load
    if signal == "per_instance":
        return load / ready if ready > 0 else None
    if signal == "utilization":
        return load / (ready * capacity) if ready > 0 else None
    if signal == "latency_p95":
        return latency_p95(load, ready, capacity)
    raise ValueError(f"unknown signal {signal!r}; known: {', '.join(SIGNALS)}")


def erlang_c(servers: int, offered: float) -> float:
    """The probability that a request waits in an M/M/c queue (Erlang C).

    `offered` is the load in Erlangs (arrival rate / service rate of one server). Computed
    through the Erlang B recursion, which stays accurate for thousands of servers. 1.0 when
    the queue is unstable (offered >= servers).
    """
    if servers < 1:
        raise ValueError("an M/M/c queue needs at least one server")
    if offered <= 0:
        return 0.0
    if offered >= servers:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    rho = offered / servers
    return blocking / (1 - rho * (1 - blocking))


def latency_p95(load: float, ready: int, capacity: float, quantile: float = 0.95) -> float | None:
    """The `quantile` of the time a request spends queued and served, in seconds.

    Capped at `LATENCY_CAP_SERVICE_TIMES / capacity` (reached when the queue is overloaded).
    None when no instance is ready and there is no load: nothing to measure.
    """
    if capacity <= 0:
        raise ValueError("capacity must be > 0")
    cap = LATENCY_CAP_SERVICE_TIMES / capacity
    if ready <= 0:
        return cap if load > 0 else None
    mu = capacity
    theta = ready * mu - max(0.0, load)  # drain rate of the queue
    if theta <= 0:
        return cap
    wait = erlang_c(ready, load / mu)
    tail = 1 - quantile

    def survival(t: float) -> float:
        """P(sojourn time > t): no wait and service > t, or an Exp(theta) wait plus service."""
        served = math.exp(-mu * t)
        if abs(mu - theta) < 1e-12 * mu:
            both = (1 + mu * t) * served
        else:
            both = (mu * math.exp(-theta * t) - theta * served) / (mu - theta)
        return (1 - wait) * served + wait * both

    low, high = 0.0, math.log(1 / tail) / min(mu, theta)
    while survival(high) > tail:
        high *= 2
        if high > cap:
            return cap
    for _ in range(100):
        middle = (low + high) / 2
        if survival(middle) > tail:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return min(high, cap)
