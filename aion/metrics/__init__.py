"""Temporal's server metrics, kept in `prometheus_client` and exposed in the reference server's
format (`exposition.py`), so dashboards built for Temporal read Aion unchanged.

Every metric name has one label set. `service_name` is the role of the code that emits it
(`frontend`, `history`, `matching`, `worker`); an RPC without a namespace counts under
`_unknown_`, as the reference does.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aion import __version__

REGISTRY = CollectorRegistry(auto_describe=False)
"""The process's metrics (one server per process)."""

# The reference's timer buckets, in seconds.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000,
)  # fmt: skip
UNKNOWN_NAMESPACE = "_unknown_"
SERVICE_LABELS = ("namespace", "operation", "service_name")


def _counter(name: str, labels: tuple[str, ...]) -> Counter:
    return Counter(name, f"{name} counter", labels, registry=REGISTRY)


def _timer(name: str, labels: tuple[str, ...]) -> Histogram:
    return Histogram(name, f"{name} histogram", labels, registry=REGISTRY, buckets=LATENCY_BUCKETS)


service_requests = _counter("service_requests", SERVICE_LABELS)
service_errors = _counter("service_errors", SERVICE_LABELS)
service_latency = _timer("service_latency", SERVICE_LABELS)


class ServiceMetrics(NamedTuple):
    """The service metrics of one namespace, operation and service."""

    requests: Counter
    errors: Counter
    latency: Histogram


@functools.cache
def service(namespace: str, operation: str, service_name: str) -> ServiceMetrics:
    """The labelled service metrics, looked up once per label set (few: namespaces times
    operations), since `labels()` checks and locks on every call."""
    labels = (namespace, operation, service_name)
    return ServiceMetrics(
        service_requests.labels(*labels),
        service_errors.labels(*labels),
        service_latency.labels(*labels),
    )


build_information = Gauge(
    "build_information",
    "build_information gauge",
    ("build_version", "service_name"),
    registry=REGISTRY,
)
for _service in ("frontend", "history", "matching", "worker"):
    build_information.labels(__version__, _service).set(1)
