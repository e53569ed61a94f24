"""The interfaces history calls out through; the layers above implement them.

History imports nothing above it: `aion.cluster` implements `RemoteShards`, `aion.versioning`
implements `Deployments`, the schedules runtime is a `ShardListener`, and `aion.server` wires
them into the engine. Each has a local-only default, so an engine works on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aion import errors
from aion.persistence import TimerTask

# A named operation (`aion.history.api.cross_shard`): runs on the process that owns the shard it
# acts on; called with the engine of that process and JSON-ready arguments.
Op = Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]


class RemoteShards(Protocol):
    """The shards other processes sharing the database own."""

    async def invoke(self, shard_id: int, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a named operation on the process owning `shard_id`."""
        ...

    def peer_addresses(self) -> list[str]:
        """Where the other processes listen."""
        ...

    async def invoke_at(
        self, address: str, op: str, args: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Run a named operation on the process listening at `address`, within `timeout` s."""
        ...


class LocalShards:
    """The only process on its database: no shard lives elsewhere."""

    async def invoke(self, shard_id: int, op: str, args: dict[str, Any]) -> dict[str, Any]:
        raise errors.ShardNotOwned(shard_id)

    def peer_addresses(self) -> list[str]:
        return []

    async def invoke_at(
        self, address: str, op: str, args: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        raise errors.Unavailable(f"no process at {address}")


class ShardListener(Protocol):
    """Told when this process starts and stops serving a shard (e.g. the schedules on it)."""

    async def shard_acquired(self, shard_id: int) -> None: ...

    def shard_released(self, shard_id: int) -> None: ...


class DeploymentView(Protocol):
    """What history reads of a worker deployment."""

    @property
    def revision(self) -> int: ...


class Deployments(Protocol):
    """The worker deployments tasks are routed by (`aion.versioning`)."""

    def route(
        self, namespace_id: str, task_queue: str, task_type: int, workflow_id: str, pinned: str
    ) -> str:
        """The version (`dep:build`) whose pollers take this task; "" for unversioned pollers."""
        ...

    def find(self, namespace_id: str, name: str) -> DeploymentView | None: ...


class NoDeployments:
    """No worker deployments: every task goes to unversioned pollers."""

    def route(
        self, namespace_id: str, task_queue: str, task_type: int, workflow_id: str, pinned: str
    ) -> str:
        return ""

    def find(self, namespace_id: str, name: str) -> DeploymentView | None:
        return None


class TimerTasks(Protocol):
    """Fires durable timer tasks at their time (`aion.history.tasks.processor`)."""

    def add(self, tasks: list[TimerTask]) -> int:
        """Take in tasks just committed (or found by a sweep); how many it did not hold
        already."""
        ...

    async def load_shard(self, shard_id: int) -> None:
        """Take in the pending tasks of a shard this process serves from now on."""
        ...

    def discard_shard(self, shard_id: int) -> None:
        """Forget the pending tasks of a shard another process serves now."""
        ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...
