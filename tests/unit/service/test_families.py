"""The per-policy families expose exactly what `prometheus_client`'s own labelled metrics
would for the same updates (names, HELP, TYPE, labels, values, bucket bounds, order)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from autoscaler.service.families import CounterFamily, GaugeFamily, HistogramFamily

BUCKETS = (0.01, 0.5, 1, 10)


def _registries() -> tuple[CollectorRegistry, CollectorRegistry]:
    return CollectorRegistry(), CollectorRegistry()


def test_a_counter_family_exposes_what_a_counter_does() -> None:
    ours, theirs = _registries()
    family = CounterFamily("x_events", "Events.", ["policy", "result"], ours)
    counter = Counter("x_events", "Events.", ["policy", "result"], registry=theirs)
    for labels, amount in ((("a", "ok"), 1.0), (("b", "error"), 2.5), (("a", "ok"), 1.0)):
        family.inc(labels, amount)
        counter.labels(*labels).inc(amount)
    assert generate_latest(ours) == _without_created(generate_latest(theirs))


def test_a_gauge_family_exposes_what_a_gauge_does_through_removals() -> None:
    ours, theirs = _registries()
    family = GaugeFamily("x_value", "A value.", ["policy", "check"], ours)
    gauge = Gauge("x_value", "A value.", ["policy", "check"], registry=theirs)
    for labels, value in ((("a", "c"), 3.0), (("b", "c"), math.nan), (("c", "d"), 7)):
        family.set(labels, value)
        gauge.labels(*labels).set(value)
    family.remove(("a", "c"))
    gauge.remove("a", "c")
    family.set(("a", "c"), -1.5)  # back, after the others
    gauge.labels("a", "c").set(-1.5)
    assert family.series() == {("a", "c"), ("b", "c"), ("c", "d")}
    assert generate_latest(ours) == generate_latest(theirs)


def test_a_histogram_family_counts_buckets_as_a_histogram_does() -> None:
    ours, theirs = _registries()
    family = HistogramFamily("x_seconds", "Durations.", ["policy"], ours, buckets=BUCKETS)
    histogram = Histogram("x_seconds", "Durations.", ["policy"], buckets=BUCKETS, registry=theirs)
    # On a bound, between bounds, above the last one, zero, for two series.
    for policy, seconds in (("a", 0.01), ("a", 0.2), ("b", 1.0), ("a", 30.0), ("b", 0.0)):
        family.observe((policy,), seconds)
        histogram.labels(policy).observe(seconds)
    family.remove(("b",))
    histogram.remove("b")
    assert family.series() == {("a",)}
    assert generate_latest(ours) == _without_created(generate_latest(theirs))


def _without_created(text: bytes) -> bytes:
    """The service turns `*_created` series off (`disable_created_metrics`)."""
    return b"".join(line for line in text.splitlines(keepends=True) if b"_created" not in line)
