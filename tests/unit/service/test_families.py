"""The per-policy families expose exactly what `prometheus_client`'s own labelled metrics
would for the same updates (names, HELP, TYPE, labels, values, bucket bounds, order), and
write the very text `generate_latest` makes of them."""

from __future__ import annotations

import math
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from autoscaler.service import families
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


# Label values and numbers the text format has to write with care: escapes, non-ASCII,
# the Go-style exponent of large numbers, NaN, the infinities, negative zero.
_LABEL_VALUES = st.text(alphabet=st.sampled_from('ab"\\\n é{},=le'), max_size=6)
_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-3, max_value=2_000).map(float),
    st.sampled_from([-0.0, 0.0, 1e22, 123456789.0, 1234567.0, 0.1, 5e-324]),
)
# Lines joined at a time (`families.CHUNK_LINES`): small, so the chunks' seams are crossed.
_CHUNKS = st.integers(min_value=1, max_value=40)
# Label names before and after `le` once sorted, given out of order.
_LABEL_NAMES = st.sampled_from([[], ["policy"], ["policy", "check"], ["zeta", "alpha", "m"]])


@settings(max_examples=150, deadline=None)
@given(
    names=_LABEL_NAMES,
    kind=st.sampled_from(["counter", "gauge"]),
    updates=st.lists(st.tuples(st.lists(_LABEL_VALUES, min_size=3, max_size=3), _NUMBERS)),
    chunk=_CHUNKS,
)
def test_a_number_familys_own_text_is_what_generate_latest_writes(
    names: list[str], kind: str, updates: list[tuple[list[str], float]], chunk: int
) -> None:
    registry = CollectorRegistry()
    family: CounterFamily | GaugeFamily = (
        CounterFamily("x_events", 'Events "with" \\ a\nnewline.', names, registry)
        if kind == "counter"
        else GaugeFamily("x_value", "A value.", names, registry)
    )
    for values, number in updates:
        labels = tuple(values[: len(names)])
        if isinstance(family, CounterFamily):
            family.inc(labels, number)
        else:
            family.set(labels, number)
    with patch.object(families, "CHUNK_LINES", chunk):
        assert family.text().encode() == generate_latest(registry)


@settings(max_examples=150, deadline=None)
@given(
    names=_LABEL_NAMES,
    observations=st.lists(st.tuples(st.lists(_LABEL_VALUES, min_size=3, max_size=3), _NUMBERS)),
    chunk=_CHUNKS,
)
def test_a_histogram_familys_own_text_is_what_generate_latest_writes(
    names: list[str], observations: list[tuple[list[str], float]], chunk: int
) -> None:
    registry = CollectorRegistry()
    family = HistogramFamily("x_seconds", "Durations.", names, registry, buckets=BUCKETS)
    for values, seconds in observations:
        family.observe(tuple(values[: len(names)]), seconds)
    with patch.object(families, "CHUNK_LINES", chunk):
        assert family.text().encode() == generate_latest(registry)
