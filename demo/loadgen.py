"""A simulated web service for the demo: its latency depends on how many instances it has.

It exports, for Prometheus to scrape, a response-time histogram and a business gauge
(open conversations). Load follows a sales-spike shape; the instance count is read from
the (moto) Auto Scaling Group, so when the controller scales the group, latency recovers.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server

CAPACITY_PER_INSTANCE = 25.0  # requests per second one instance serves comfortably
BASE_LATENCY = 0.03  # mean seconds at low utilisation (p95 is about 3x the mean)
BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0)


def load_at(t: float) -> float:
    """Requests per second at `t` seconds into the demo: calm, a sales spike, calm again."""
    if t < 10:
        return 30.0
    if t < 20:
        return 30.0 + (t - 10) * 12.0  # ramp to 150 rps
    if t < 40:
        return 150.0 + 10.0 * math.sin(t)
    return max(30.0, 150.0 - (t - 40) * 15.0)


def latency_for(rps: float, instances: int) -> float:
    """A queueing-flavoured latency: grows sharply as utilisation nears 1."""
    utilisation = rps / max(1e-9, instances * CAPACITY_PER_INSTANCE)
    return BASE_LATENCY / max(0.05, 1.0 - min(utilisation, 0.95))


class LoadGenerator:
    """Produces observations every 100 ms until stopped."""

    def __init__(self, instances: Callable[[], int], port: int) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "demo_http_request_duration_seconds",
            "Response time of the demo checkout service.",
            ["service"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.conversations = Gauge(
            "demo_conversations_open",
            "Open customer conversations.",
            ["service"],
            registry=self.registry,
        )
        self.rps = Gauge("demo_requests_per_second", "Offered load.", registry=self.registry)
        self._instances = instances
        self._port = port
        self._stop = threading.Event()
        self._started = time.monotonic()
        self.current_instances = 0
        self.current_rps = 0.0

    def start(self) -> None:
        start_http_server(self._port, addr="127.0.0.1", registry=self.registry)
        threading.Thread(target=self._run, name="loadgen", daemon=True).start()

    def reset_clock(self) -> None:
        """Start the load curve over (the demo does so when the controller starts)."""
        self._started = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        rng = random.Random(7)
        last_poll = 0.0
        while not self._stop.wait(0.1):
            now = time.monotonic()
            if now - last_poll > 1.0:
                self.current_instances = max(0, self._instances())
                last_poll = now
            rps = load_at(now - self._started)
            self.rps.set(rps)
            self.current_rps = rps
            self.conversations.labels("checkout").set(round(rps * 1.6))
            mean = latency_for(rps, max(1, self.current_instances))
            for _ in range(max(1, int(rps / 10))):
                self.latency.labels("checkout").observe(rng.expovariate(1.0 / mean))
