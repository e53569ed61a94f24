"""Per task queue rates (tasks added, tasks dispatched) and the system's dispatch rate limit.

A `RateTracker` counts events in fixed buckets over a sliding window, as DescribeTaskQueue's
`tasks_add_rate` and `tasks_dispatch_rate` report them (5 s buckets over the last 30 s; a
queue younger than the window divides by its age). `system_dispatch_rps` reads the reference's
dynamic config keys that cap how fast a queue of a namespace dispatches tasks.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from aion.common.quotas import check_constrained_value, constrained_value

BUCKET_S = 5.0
WINDOW_S = 30.0

# The reference's keys (per task queue partition there; Aion's queues have one partition).
NAMESPACE_DISPATCH_RATE = "admin.matchingNamespaceToPartitionDispatchRate"
QUEUE_DISPATCH_RATE = "admin.matchingNamespaceTaskqueueToPartitionDispatchRate"
DISPATCH_DEFAULTS: dict[str, float] = {
    NAMESPACE_DISPATCH_RATE: 10000.0,
    QUEUE_DISPATCH_RATE: 1000.0,
}
DISPATCH_CONSTRAINTS: dict[str, tuple[str, ...]] = {
    NAMESPACE_DISPATCH_RATE: ("namespace",),
    QUEUE_DISPATCH_RATE: ("namespace", "taskQueueName", "taskType"),
}


class RateTracker:
    """Events per second over the last `WINDOW_S` seconds."""

    def __init__(self) -> None:
        self._now = time.monotonic
        self._started = self._now()
        self._buckets: deque[tuple[float, int]] = deque()  # (bucket start, count)

    def _expire(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - WINDOW_S - BUCKET_S:
            self._buckets.popleft()

    def inc(self, n: int = 1) -> None:
        now = self._now()
        self._expire(now)
        start = now - (now - self._started) % BUCKET_S
        if self._buckets and self._buckets[-1][0] == start:
            self._buckets[-1] = (start, self._buckets[-1][1] + n)
        else:
            self._buckets.append((start, n))

    def rate(self) -> float:
        now = self._now()
        self._expire(now)
        # The current bucket and the full ones before it, back to about WINDOW_S ago.
        window = WINDOW_S + (now - self._started) % BUCKET_S
        total = sum(count for start, count in self._buckets if start > now - window)
        elapsed = min(window, now - self._started)
        return total / elapsed if elapsed > 0 else 0.0


def system_dispatch_rps(
    dynamic_config: dict[str, Any], namespace: str, task_queue: str, kind: str
) -> float:
    """The most tasks a second a queue may dispatch whatever its API or worker limit says: the
    lower of the namespace's and the queue's setting (`DISPATCH_DEFAULTS`)."""
    context = {
        "namespace": namespace,
        "taskQueueName": task_queue,
        "taskType": "Workflow" if kind == "workflow" else "Activity",
    }
    rates = (constrained_value(dynamic_config.get(key), **context) for key in DISPATCH_DEFAULTS)
    return min(
        float(default if rate is None else rate)
        for rate, default in zip(rates, DISPATCH_DEFAULTS.values(), strict=True)
    )


def check_value(key: str, value: Any) -> str | None:
    """Why `value` is not valid for dispatch rate `key` (None: it is)."""
    return check_constrained_value(value, float, DISPATCH_CONSTRAINTS[key])
