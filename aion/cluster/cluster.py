"""`Cluster`: what one process needs to share a database with others."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import Message

from aion import errors
from aion.cluster.membership import Membership
from aion.cluster.peers import Peers
from aion.persistence import HostRecord, QueueTask

if TYPE_CHECKING:
    from aion.history.engine import HistoryEngine
    from aion.namespaces import NamespaceRegistry

log = logging.getLogger(__name__)

TASKS_CHANNEL = "aion_tasks"
MAX_NOTIFICATION_CHARS = 7000  # PostgreSQL refuses notification payloads of 8000 bytes or more


class Cluster:
    """Membership and shard leases, calls to peers, and tasks shared with the peers' pollers."""

    def __init__(self, engine: HistoryEngine, namespaces: NamespaceRegistry, address: str) -> None:
        self.engine = engine
        self.store = engine.store
        self.me = HostRecord(engine.host_id, address)
        self.membership = Membership(
            engine.store,
            self.me,
            engine.num_shards,
            engine.acquire_shard,
            engine.release_shard,
            lambda: {s.shard_id: s.range_id for s in engine.shards.values()},
            on_tick=self._refresh,
        )
        self.namespaces = namespaces
        self.peers = Peers()
        self._outbox: list[QueueTask] = []
        self._sender: asyncio.Task[None] | None = None

    async def _refresh(self) -> None:
        """Take in the namespaces, search attributes and worker deployments the others made."""
        await self.namespaces.load()
        await self.engine.deployments.refresh()

    async def start(self) -> None:
        await self.store.listen(TASKS_CHANNEL, self._received)
        self.engine.matching.on_requeue = self.share_task
        await self.membership.start()

    async def stop(self) -> None:
        await self.membership.stop()
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender
        await self.peers.close()

    # ---- calls on a shard's owner --------------------------------------------------------
    async def invoke(self, shard_id: int, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a named operation on the process owning `shard_id`."""
        address = self.membership.owner_address(shard_id)
        if address is None:
            raise errors.ShardNotOwned(shard_id)  # ours by the book, but not (or no longer) held
        return await self.peers.invoke(address, op, args)

    def invoke_everywhere(
        self, op: str, args: dict[str, Any]
    ) -> list[asyncio.Task[dict[str, Any]]]:
        """Start a named operation on every other process; the caller awaits what it needs."""
        loop = asyncio.get_running_loop()
        return [
            loop.create_task(self.peers.invoke(address, op, args))
            for address in self.membership.peer_addresses()
        ]

    async def forward(
        self, shard_id: int, method: str, request: Message, context: grpc.aio.ServicerContext
    ) -> Message | None:
        """Make a client's call on the shard's owner; None when it could not be served there
        (this process is the owner by the book but holds no lease yet, or the owner is
        unreachable or handing over): the caller tries again shortly."""
        address = self.membership.owner_address(shard_id)
        if address is None:
            return None
        return await self.peers.forward(address, method, request, context)

    # ---- tasks for the peers' pollers ----------------------------------------------------
    def share_task(self, task: QueueTask) -> None:
        """Tell the other processes of a task no poller here took (they may have one)."""
        self._outbox.append(task)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                for payload in _payloads(self.me.host_id, batch):
                    await self.store.publish(TASKS_CHANNEL, payload)
        except Exception:
            log.exception("could not share tasks with the other processes")
        finally:
            self._sender = None

    def _received(self, payload: str) -> None:
        message = json.loads(payload)
        if message["from"] == self.me.host_id:
            return
        for fields in message["tasks"]:
            self.engine.matching.add_task(QueueTask(*fields))


def _payloads(sender: str, tasks: list[QueueTask]) -> list[str]:
    """Notification payloads carrying `tasks`, each under PostgreSQL's size limit."""
    payloads: list[str] = []
    chunk: list[str] = []
    size = 0
    for task in tasks:
        encoded = json.dumps(dataclasses.astuple(task))
        if chunk and size + len(encoded) > MAX_NOTIFICATION_CHARS:
            payloads.append(_payload(sender, chunk))
            chunk, size = [], 0
        chunk.append(encoded)
        size += len(encoded) + 1
    if chunk:
        payloads.append(_payload(sender, chunk))
    return payloads


def _payload(sender: str, encoded_tasks: list[str]) -> str:
    return f'{{"from": {json.dumps(sender)}, "tasks": [{",".join(encoded_tasks)}]}}'
