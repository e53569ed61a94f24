"""Counter and histogram families for the event loop: plain numbers behind a
`prometheus_client` Collector.

`prometheus_client`'s own metrics take a lock and check their state on every increment, which
made recording cost several percent of the server's CPU. Aion records only on its event loop's
thread (the SQLite writer thread records nothing) and reads at scrape on that same thread, so a
labelled child here is a bare number: an increment is one addition, an observation one bisection
and two additions. The registry, the collector protocol and the metric families handed to the
exposition stay `prometheus_client`'s.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class CounterValue:
    """One labelled counter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class HistogramValue:
    """One labelled histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf's
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class CounterFamily(Collector):
    """A counter name with its label names; `labels(...)` gives the child of one label set."""

    def __init__(self, name: str, labels: tuple[str, ...], registry: CollectorRegistry) -> None:
        self.name = name
        self.label_names = labels
        self._children: dict[tuple[str, ...], CounterValue] = {}
        registry.register(self)

    def labels(self, *values: str) -> CounterValue:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = CounterValue()
        return child

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, f"{self.name} counter", labels=self.label_names)
        for values, child in self._children.items():
            family.add_metric(values, child.value)
        yield family


class HistogramFamily(Collector):
    """A histogram name with its label names and buckets (upper bounds, +Inf implied)."""

    def __init__(
        self,
        name: str,
        labels: tuple[str, ...],
        buckets: tuple[float, ...],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.label_names = labels
        self.bounds = tuple(float(b) for b in buckets)
        self._le = [*(repr(b) for b in self.bounds), "+Inf"]
        self._children: dict[tuple[str, ...], HistogramValue] = {}
        registry.register(self)

    def labels(self, *values: str) -> HistogramValue:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = HistogramValue(self.bounds)
        return child

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, f"{self.name} histogram", labels=self.label_names)
        for values, child in self._children.items():
            running, buckets = 0, []
            for le, count in zip(self._le, child.counts, strict=True):
                running += count
                buckets.append((le, running))
            family.add_metric(values, buckets, child.sum)
        yield family
