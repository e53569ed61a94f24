"""The worker deployments of every namespace, in memory and in the store, and the routing of
tasks to the pollers of a version.

Versioned pollers register their version on the task queues they poll. A task pinned to a
version that serves its queue goes to that version's pollers; any other task goes to the target
of the queue's deployment (its ramping version for the workflows the ramp picks, else its
current version), or to unversioned pollers when there is none.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

from aion import errors
from aion.common.versions import RAMPING_VERSION, parse_version, version_key
from aion.persistence import ConditionFailedError, DeploymentRecord, Store
from aion.versioning.deployment import Deployment

T = TypeVar("T")
Key = tuple[str, str]  # namespace id, deployment name


def not_found(name: str) -> errors.NotFound:
    return errors.NotFound(
        f"no Worker Deployment found with name '{name}'; does your Worker Deployment have pollers?"
    )


class DeploymentRegistry:
    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock
        self._deployments: dict[Key, tuple[Deployment, int]] = {}
        self._by_queue: dict[tuple[str, str, int], set[str]] = defaultdict(set)
        self._locks: dict[Key, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Called with a namespace id after its routing changed (matching re-offers its backlog).
        self.on_routing_changed: Callable[[str], None] = lambda namespace_id: None

    async def refresh(self) -> None:
        """Load what the store holds: at start-up, and then what other processes changed
        (several processes on one database)."""
        records = await self.store.list_deployments()
        loaded = {(r.namespace_id, r.name): r for r in records}
        changed = {ns for ns, _ in self._deployments.keys() - loaded.keys()}
        for key, r in loaded.items():
            mine = self._deployments.get(key)
            if mine is None or mine[1] < r.version:
                self._deployments[key] = (Deployment.from_json(r.state), r.version)
                changed.add(key[0])
        for key in self._deployments.keys() - loaded.keys():
            del self._deployments[key]
        if changed:
            self._index()
            for namespace_id in changed:
                self.on_routing_changed(namespace_id)

    def _index(self) -> None:
        by_queue: dict[tuple[str, str, int], set[str]] = defaultdict(set)
        for (namespace_id, name), (deployment, _) in self._deployments.items():
            for version in deployment.versions.values():
                for task_queue, task_type in version.task_queues:
                    by_queue[(namespace_id, str(task_queue), int(task_type))].add(name)  # type: ignore[call-overload]
        self._by_queue = by_queue

    # ---- reading ---------------------------------------------------------------------------
    def get(self, namespace_id: str, name: str) -> Deployment:
        found = self._deployments.get((namespace_id, name))
        if found is None:
            raise not_found(name)
        return found[0]

    def find(self, namespace_id: str, name: str) -> Deployment | None:
        found = self._deployments.get((namespace_id, name))
        return found[0] if found else None

    def every(self) -> list[tuple[str, Deployment]]:
        """Every namespace's deployments, as (namespace id, deployment)."""
        return [(ns, d) for (ns, _), (d, _) in sorted(self._deployments.items())]

    def all(self, namespace_id: str) -> list[Deployment]:
        return [d for (ns, _), (d, _) in sorted(self._deployments.items()) if ns == namespace_id]

    # ---- routing ---------------------------------------------------------------------------
    def route(
        self, namespace_id: str, task_queue: str, task_type: int, workflow_id: str, pinned: str
    ) -> str:
        """The version (`dep:build`) whose pollers take this task; "" for unversioned pollers.
        `pinned` may also be RAMPING_VERSION: the queue's ramping version, whatever its ramp."""
        use_ramping = pinned == RAMPING_VERSION
        if pinned and not use_ramping:
            name, build_id = parse_version(pinned)
            deployment = self.find(namespace_id, name)
            version = deployment.versions.get(build_id) if deployment else None
            if version is not None and version.serves(task_queue, task_type):
                return pinned
        for name in sorted(self._by_queue.get((namespace_id, task_queue, task_type), ())):
            deployment = self._deployments[(namespace_id, name)][0]
            build_id = deployment.target(workflow_id, use_ramping)
            if build_id and deployment.versions[build_id].serves(task_queue, task_type):
                return version_key(name, build_id)
        return ""

    def is_versioned(self, namespace_id: str, task_queue: str, task_type: int) -> bool:
        """Whether any version registered this queue (else every task goes to any poller)."""
        return (namespace_id, task_queue, task_type) in self._by_queue

    # ---- changing --------------------------------------------------------------------------
    async def register(
        self, namespace_id: str, name: str, build_id: str, task_queue: str, task_type: int
    ) -> None:
        """A versioned poller arrived: its deployment and version exist and serve the queue."""
        deployment = self.find(namespace_id, name)
        version = deployment.versions.get(build_id) if deployment else None
        if version is not None and version.serves(task_queue, task_type):
            return
        now = self.clock()

        def add(d: Deployment) -> None:
            d.register(build_id, task_queue, task_type, now)

        await self.change(namespace_id, name, add, create=True)

    async def change(
        self,
        namespace_id: str,
        name: str,
        fn: Callable[[Deployment], T],
        create: bool = False,
    ) -> T:
        """Apply `fn` to the deployment and save it (creating it when `create`)."""
        key = (namespace_id, name)
        async with self._locks[key]:
            for _ in range(3):
                found = self._deployments.get(key)
                if found is None and not create:
                    raise not_found(name)
                deployment = (
                    Deployment.from_json(found[0].to_json())
                    if found
                    else Deployment(namespace_id, name, self.clock())
                )
                result = fn(deployment)
                expected = found[1] if found else None
                record = DeploymentRecord(
                    namespace_id, name, deployment.to_json(), (expected or 0) + 1
                )
                try:
                    await self.store.save_deployment(record, expected)
                except ConditionFailedError:
                    await self._reload_one(key)  # another process changed it: apply again
                    continue
                self._deployments[key] = (deployment, record.version)
                self._index()
                self.on_routing_changed(namespace_id)
                return result
        raise errors.Unavailable("worker deployment changed concurrently; try again")

    async def delete(self, namespace_id: str, name: str) -> None:
        async with self._locks[(namespace_id, name)]:
            await self.store.delete_deployment(namespace_id, name)
            self._deployments.pop((namespace_id, name), None)
            self._index()

    async def _reload_one(self, key: Key) -> None:
        for r in await self.store.list_deployments(key[0]):
            if r.name == key[1]:
                self._deployments[key] = (Deployment.from_json(r.state), r.version)
                return
        self._deployments.pop(key, None)
