"""Per-policy metric families kept as plain numbers, turned into metrics at scrape time.

`prometheus_client` gives each labelled series (a "child") its own object, a lock per
value and, for a histogram, a value and a lock per bucket: about 11 KB per policy for the
service's per-policy and per-check series, 110 MB at 10,000 policies. These families keep
one dict per metric (label values -> number, or a histogram's bucket counts) under one
lock, and build the same samples when `/metrics` is read, as custom collectors do
(`CounterMetricFamily`, `GaugeMetricFamily`, `HistogramMetricFamily`): the exposed names,
types, HELP texts, labels and values are those of the children they replace.

Each family also writes its own lines of the text format (`text`), the very lines
`generate_latest` makes of those samples: at 10,000 policies `/metrics` has 400,000
lines, and going through a `Sample` and a sorted label dict per line cost 2.8 s of CPU
and some 150 MB of transient memory per scrape.
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

# Lines of text joined at a time. A family's text is built in chunks of this many lines
# (about 1 MB each, so each gets a mapping of its own: `allocator`) rather than from one
# list of all its lines: at 10,000 policies that list held some 150,000 short strings at
# once, and the small-object arenas they filled stayed behind the scrape, pinned by the
# objects the evaluations made meanwhile (four renders beside a thread making such objects:
# 32 to 34 MB of RSS kept, 14 to 15 MB in chunks).
CHUNK_LINES = 16_384


class Family(Collector):
    """One metric family: its name, HELP text and label names, registered in `registry`,
    and its series (label values -> what `collect` turns into samples) under one lock."""

    kind = ""  # the TYPE line's word

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self._lock = threading.Lock()
        self._values: dict[Labels, Any] = {}
        # The text format writes a sample's labels sorted by name.
        self._order = sorted(range(len(self.labels)), key=self.labels.__getitem__)
        registry.register(self)

    def _head(self, exposed: str) -> str:
        """The HELP and TYPE lines, as `generate_latest` writes them."""
        help_text = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {exposed} {help_text}\n# TYPE {exposed} {self.kind}\n"

    def _pairs(self, values: Labels) -> list[str]:
        """`name="value"` for each label, sorted by name, values escaped."""
        names = self.labels
        return [f'{names[i]}="{_escape(values[i])}"' for i in self._order]

    def text(self) -> str:
        """The family in the Prometheus text format (what `generate_latest` makes of
        `collect()`)."""
        raise NotImplementedError

    def remove(self, labels: Labels) -> None:
        """Drop the series of `labels`, if any."""
        with self._lock:
            self._values.pop(labels, None)

    def series(self) -> frozenset[Labels]:
        """The label values of every series."""
        with self._lock:
            return frozenset(self._values)


class _NumberFamily(Family):
    """A family of one number per series, exposed as `metric_family` builds it."""

    metric_family: Callable[..., CounterMetricFamily | GaugeMetricFamily]
    suffix = ""  # of the exposed name

    def collect(self) -> Iterable[Metric]:
        family = self.metric_family(self.name, self.documentation, labels=self.labels)
        with self._lock:
            values = list(self._values.items())
        for labels, value in values:
            family.add_metric(labels, value)
        yield family

    def text(self) -> str:
        exposed = self.name + self.suffix
        # Two lists, not a (labels, value) tuple per series (see `HistogramFamily._snapshot`).
        with self._lock:
            keys, values = list(self._values), list(self._values.values())
        chunks = [self._head(exposed)]
        for start in range(0, len(values), CHUNK_LINES):  # (see `CHUNK_LINES`)
            end = start + CHUNK_LINES
            if not self.labels:
                chunks.append(
                    "".join(f"{exposed} {_number(value)}\n" for value in values[start:end])
                )
            else:
                chunks.append(
                    "".join(
                        f"{exposed}{{{','.join(self._pairs(labels))}}} {_number(value)}\n"
                        for labels, value in zip(keys[start:end], values[start:end], strict=True)
                    )
                )
        return "".join(chunks)


class CounterFamily(_NumberFamily):
    """A counter per label values; like a `Counter`, exposed as `NAME_total`. Nothing
    calls `remove` on one but for a policy that is gone: counters outlive reloads."""

    metric_family = CounterMetricFamily
    kind = "counter"
    suffix = "_total"

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        """Add `amount` to the series of `labels` (created at 0)."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount


class GaugeFamily(_NumberFamily):
    """A gauge per label values, which a reload can remove."""

    metric_family = GaugeMetricFamily
    kind = "gauge"

    def set(self, labels: Labels, value: float) -> None:
        """Set the series of `labels` to `value`."""
        with self._lock:
            self._values[labels] = float(value)


class HistogramFamily(Family):
    """A histogram per label values: a count per bucket and a sum, as `Histogram` keeps."""

    kind = "histogram"

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

    def _snapshot(self) -> tuple[list[Labels], array[float]]:
        """The label values of every series, and their counts one after the other in one
        array (`[sum, bucket 0, ..., +Inf]` each), copied under the lock.

        One array rather than a list of floats per series: at 10,000 policies those were
        150,000 float objects and 10,000 lists per histogram, some 7 MB of small objects
        alive through the family's text. The small-object arenas they filled stayed mapped
        after the scrape, pinned by the objects the evaluations made meanwhile (in
        process, 7 to 9 arenas of 1 MiB kept after one scrape beside such a thread; 2 to 3
        since)."""
        flat = array("d")
        with self._lock:
            keys = list(self._values)
            for counts in self._values.values():
                flat.extend(counts)
        return keys, flat

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

    def text(self) -> str:
        name = self.name
        keys, flat = self._snapshot()
        width = len(self._bounds) + 1
        # `le` takes its place among the sorted label names of each bucket's sample.
        at = sum(1 for label in self.labels if label < "le")
        chunks: list[str] = []
        lines = [self._head(name)]
        for i, labels in enumerate(keys):
            counts = flat[i * width : (i + 1) * width]
            if len(lines) >= CHUNK_LINES:  # (see `CHUNK_LINES`)
                chunks.append("".join(lines))
                lines.clear()
            pairs = self._pairs(labels)
            before = "".join(f"{pair}," for pair in pairs[:at])
            after = "".join(f",{pair}" for pair in pairs[at:])
            running = 0.0
            for bound, count in zip(self._names, counts[1:], strict=True):
                running += count
                lines.append(f'{name}_bucket{{{before}le="{bound}"{after}}} {_number(running)}\n')
            plain = "{" + ",".join(pairs) + "}" if pairs else ""
            lines.append(f"{name}_count{plain} {_number(running)}\n")
            lines.append(f"{name}_sum{plain} {_number(counts[0])}\n")
        chunks.append("".join(lines))
        return "".join(chunks)


def _escape(value: str) -> str:
    """A label value as the text format writes it (backslash, newline and quote escaped)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


# Small whole numbers (counts, capacities) are most values: their text once.
_WHOLE: dict[float, str] = {
    float(n): floatToGoString(n)  # type: ignore[no-untyped-call]
    for n in range(1024)
}


def _number(value: float) -> str:
    """`value` as the text format writes it (`floatToGoString`)."""
    text = _WHOLE.get(value)
    if text is None or (text == "0.0" and math.copysign(1.0, value) < 0):  # -0.0 is "-0.0"
        return floatToGoString(value)  # type: ignore[no-untyped-call,no-any-return]
    return text
