"""Rate quotas: a token bucket, buckets by priority, and dynamic config values constrained to a
namespace or a task queue.

Such a dynamic config value is either one value (everywhere) or, as in the reference's dynamic
config files, a list of constrained values: the first whose constraints all match wins, an
entry without constraints is the fallback, e.g.
`[{"value": 50, "constraints": {"namespace": "tenant-a"}}, {"value": 2400}]`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`. A call takes a token if one is there
    (`allow`); `spend` takes one even when none is, leaving a debt paid back by the refill.
    A rate of 0 or less lets nothing through."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def allow(self) -> bool:
        """Take a token if one is there."""
        if self.rate <= 0:
            return False
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def spend(self) -> None:
        """Take a token, into debt if need be."""
        self._refill()
        self._tokens -= 1.0

    def wait_s(self) -> float:
        """Seconds until a token is there (inf when the rate is 0: never)."""
        if self.rate <= 0:
            return float("inf")
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.rate)


class PriorityBuckets:
    """One bucket per priority level (0 the highest), all of the same rate, as the reference's
    priority rate limiter: a call is decided by its level's bucket and, once allowed, also
    spends a token of every lower level, so busy important calls hold back less important ones
    and never the other way round."""

    def __init__(self, levels: int, rate: float, burst: float) -> None:
        self.buckets = [TokenBucket(rate, burst) for _ in range(levels)]

    def allow(self, priority: int) -> bool:
        if not self.buckets[priority].allow():
            return False
        for bucket in self.buckets[priority + 1 :]:
            bucket.spend()
        return True


def constrained_value(value: Any, **context: str) -> Any:
    """The value of a setting in `context` (namespace, taskQueueName, taskType): `value`
    itself, or the first constrained value whose constraints all match (None: none does)."""
    if not isinstance(value, list):
        return value
    for entry in value:
        constraints = entry.get("constraints", {})
        if all(context.get(name) == wanted for name, wanted in constraints.items()):
            return entry["value"]
    return None


def check_constrained_value(value: Any, expected: type, constraints: tuple[str, ...]) -> str | None:
    """Why `value` is not a valid setting holding numbers of type `expected`, constrained by
    the names in `constraints` (None: it is valid)."""
    for entry in value if isinstance(value, list) else [{"value": value}]:
        if not isinstance(entry, dict) or "value" not in entry:
            return 'each constrained value must be an object with a "value"'
        if set(entry) - {"value", "constraints"}:
            return 'a constrained value holds only "value" and "constraints"'
        given = entry.get("constraints", {})
        if not isinstance(given, dict) or set(given) - set(constraints):
            return f"the constraints honoured here are {', '.join(constraints)}"
        if not all(isinstance(wanted, str) for wanted in given.values()):
            return "a constraint must be a string"
        number = entry["value"]
        if isinstance(number, bool) or not isinstance(number, int | float):
            return "must be a number"
        if expected is int and not isinstance(number, int):
            return "must be an integer"
    return None
