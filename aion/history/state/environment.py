"""What mutable state needs from the server around it, given to its constructor.

The engine builds one from its clock, limits, matching and deployment registry; the defaults stand
alone (a live sticky worker everywhere, unversioned routing), so unit tests need no engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aion.common.limits import Limits
from aion.common.timeutil import now_ns


def _always_alive(namespace_id: str, task_queue: str) -> bool:
    return True


def _unversioned(namespace_id: str, task_queue: str, workflow_id: str) -> str:
    return ""


DAY_NS = 24 * 3600 * 1_000_000_000


def _one_day(namespace_id: str) -> int:
    return DAY_NS


@dataclass
class Environment:
    """The clock, limits and routing facts a transition reads."""

    now: Callable[[], int] = now_ns
    limits: Limits = field(default_factory=Limits)
    # (namespace id, sticky queue): does a worker still poll it?
    is_sticky_alive: Callable[[str, str], bool] = _always_alive
    # (namespace id, task queue, workflow id): the worker deployment version new workflow tasks
    # on the queue go to ("" = unversioned pollers), whatever the workflow is pinned to.
    routing_target: Callable[[str, str, str], str] = _unversioned
    # (namespace id): how long a closed run is kept before it is deleted (ns).
    retention_ns: Callable[[str], int] = _one_day
