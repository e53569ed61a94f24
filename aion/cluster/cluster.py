"""`Cluster`: what one process needs to share a database with others."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from aion import errors
from aion.cluster.membership import Membership, ShardOwner
from aion.cluster.peers import Peers
from aion.matching import MatchingEngine
from aion.persistence import HostRecord, QueueTask, Store, StoreUnavailableError

log = logging.getLogger(__name__)

TASKS_CHANNEL = "aion_tasks"
MAX_NOTIFICATION_CHARS = 7000  # PostgreSQL refuses notification payloads of 8000 bytes or more
PUBLISH_RETRY_S = 0.5


class Cluster:
    """Membership and shard leases, calls to peers, and tasks shared with the peers' pollers:
    the history engine's `RemoteShards`."""

    def __init__(
        self,
        store: Store,
        matching: MatchingEngine,
        host_id: str,
        address: str,
        num_shards: int,
        on_tick: Callable[[], Awaitable[None]],
        peer_credentials: Callable[[], grpc.ChannelCredentials] | None = None,
    ) -> None:
        """`on_tick` runs after every heartbeat: it takes in what the others changed;
        `peer_credentials`: TLS credentials for calling the others (None: plaintext)."""
        self.store = store
        self.matching = matching
        self.me = HostRecord(host_id, address)
        self.membership = Membership(store, self.me, num_shards, on_tick=on_tick)
        self.peers = Peers(peer_credentials)
        self._outbox: list[QueueTask] = []
        self._ask_resend = False  # ask the others to share their parked tasks again
        self._sender: asyncio.Task[None] | None = None

    async def start(self, owner: ShardOwner) -> None:
        """Join the others and take this process's share of the shards for `owner`."""
        self.peers.secret = await self.store.cluster_secret()
        await self.store.listen(TASKS_CHANNEL, self._received, resumed=self._resumed)
        self.matching.on_requeue = self.share_task
        await self.membership.start(owner)

    async def stop(self) -> None:
        await self.membership.stop()
        if self._sender is not None:
            self._sender.cancel()  # it may be waiting for an unreachable database
            with contextlib.suppress(BaseException):
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

    def has_peers(self) -> bool:
        return bool(self.membership.peer_addresses())

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
        self._wake_sender()

    def _wake_sender(self) -> None:
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())

    def _resumed(self) -> None:
        """Our notification connection was lost and is back: what the others shared meanwhile
        never reached us, and what we shared may not have reached them. Share our parked tasks
        again and ask the others to do the same."""
        self._outbox.extend(self.matching.parked_tasks())
        self._ask_resend = True
        self._wake_sender()

    async def _send(self) -> None:
        try:
            while self._outbox or self._ask_resend:
                batch, self._outbox = self._outbox, []
                payloads = _payloads(self.me.host_id, batch)
                if self._ask_resend:
                    self._ask_resend = False
                    payloads.append(json.dumps({"from": self.me.host_id, "resend": True}))
                for payload in payloads:
                    await self._publish(payload)
        except Exception:
            log.exception("could not share tasks with the other processes")
        finally:
            self._sender = None

    async def _publish(self, payload: str) -> None:
        """Publish, waiting for the database while it is unreachable."""
        while True:
            try:
                await self.store.publish(TASKS_CHANNEL, payload)
                return
            except StoreUnavailableError:
                await asyncio.sleep(PUBLISH_RETRY_S)

    def _received(self, payload: str) -> None:
        message = json.loads(payload)
        if message["from"] == self.me.host_id:
            return
        if message.get("resend"):
            self._outbox.extend(self.matching.parked_tasks())
            self._wake_sender()
            return
        for fields in message["tasks"]:
            self.matching.add_task(QueueTask(*fields))


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
