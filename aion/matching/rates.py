"""Per task queue rates (tasks added, tasks dispatched) and the queue's rate limit.

A `RateTracker` counts events in fixed buckets over a sliding window, as DescribeTaskQueue's
`tasks_add_rate` and `tasks_dispatch_rate` report them (5 s buckets over the last 30 s; a
queue younger than the window divides by its age). A `RateLimiter` is a token bucket that
spaces dispatches at the configured requests per second.
"""

from __future__ import annotations

import time
from collections import deque

BUCKET_S = 5.0
WINDOW_S = 30.0


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


class RateLimiter:
    """A token bucket of `rps` tokens a second (burst of one second's worth, at least 1)."""

    def __init__(self, rps: float) -> None:
        self.rps = rps
        self._burst = max(1.0, rps)
        self._tokens = self._burst
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self.rps)
        self._at = now

    def try_take(self) -> bool:
        """Take a token if one is there."""
        if self.rps <= 0:
            return False
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_s(self) -> float:
        """Seconds until a token is there (inf when the limit is 0: nothing is dispatched)."""
        if self.rps <= 0:
            return float("inf")
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.rps)
