"""Per-policy metric families kept as plain numbers, turned into metrics at scrape time.

`prometheus_client` gives each labelled series (a "child") its own object, a lock per
value and, for a histogram, a value and a lock per bucket: about 11 KB per policy for the
service's per-policy and per-check series, 110 MB at 10,000 policies. These families keep
one dict per metric (label values -> number, or a histogram's bucket counts) under one
lock, and build the same samples when `/metrics` is read, as custom collectors do
(`CounterMetricFamily`, `GaugeMetricFamily`, `HistogramMetricFamily`): the exposed names,
types, HELP texts, labels and values are those of the children they replace.
"""

from __future__ import annotations

import math
import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]


class _Family(Collector):
    """One metric family: its name, HELP text and label names, registered in `registry`,
    and its series (label values -> what `collect` turns into samples) under one lock."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self._lock = threading.Lock()
        self._values: dict[Labels, Any] = {}
        registry.register(self)

    def remove(self, labels: Labels) -> None:
        """Drop the series of `labels`, if any."""
        with self._lock:
            self._values.pop(labels, None)

    def series(self) -> frozenset[Labels]:
        """The label values of every series."""
        with self._lock:
            return frozenset(self._values)


class _NumberFamily(_Family):
    """A family of one number per series, exposed as `metric_family` builds it."""

    metric_family: Callable[..., CounterMetricFamily | GaugeMetricFamily]

    def collect(self) -> Iterable[Metric]:
        family = self.metric_family(self.name, self.documentation, labels=self.labels)
        with self._lock:
            values = list(self._values.items())
        for labels, value in values:
            family.add_metric(labels, value)
        yield family


class CounterFamily(_NumberFamily):
    """A counter per label values; like a `Counter`, exposed as `NAME_total`. Nothing
    calls `remove` on one: counters outlive reloads."""

    metric_family = CounterMetricFamily

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        """Add `amount` to the series of `labels` (created at 0)."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount


class GaugeFamily(_NumberFamily):
    """A gauge per label values, which a reload can remove."""

    metric_family = GaugeMetricFamily

    def set(self, labels: Labels, value: float) -> None:
        """Set the series of `labels` to `value`."""
        with self._lock:
            self._values[labels] = float(value)


class HistogramFamily(_Family):
    """A histogram per label values: a count per bucket and a sum, as `Histogram` keeps."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        registry: CollectorRegistry,
        *,
        buckets: Sequence[float],
    ) -> None:
        self._bounds = [float(b) for b in buckets] + [math.inf]
        self._names = [floatToGoString(b) for b in self._bounds]  # type: ignore[no-untyped-call]
        # `_values`: label values -> [sum, count of bucket 0, ..., count of +Inf], not
        # cumulative, in an array of doubles updated in place: a list would hold a float
        # object per count, and replace one at every observation (at 10,000 policies, 2 MB
        # more, and allocations that outlive their neighbours, fragmenting the heap).
        self._zeros = array("d", bytes(8 * (len(self._bounds) + 1)))
        super().__init__(name, documentation, labels, registry)

    def observe(self, labels: Labels, amount: float) -> None:
        """Count `amount` in the first bucket it fits (like `Histogram.observe`)."""
        with self._lock:
            counts = self._values.get(labels)
            if counts is None:
                counts = self._values[labels] = array("d", self._zeros)
            counts[0] += amount
            if not math.isnan(amount):  # fits no bucket, as `amount <= bound` says
                counts[1 + bisect_left(self._bounds, amount)] += 1

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        with self._lock:
            values = [(labels, counts.tolist()) for labels, counts in self._values.items()]
        for labels, counts in values:
            total, cumulative = counts[0], []
            running = 0.0
            for name, count in zip(self._names, counts[1:], strict=True):
                running += count
                cumulative.append((name, running))
            family.add_metric(labels, cumulative, total)
        yield family
