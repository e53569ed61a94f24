"""`Cluster`: what one process needs to share a database with others."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from aion import errors
from aion.cluster.membership import Membership, ShardOwner
from aion.cluster.peers import Peers
from aion.persistence import HostRecord, Store


class Cluster:
    """Membership and shard leases, and calls to peers: the history engine's `RemoteShards`."""

    def __init__(
        self,
        store: Store,
        host_id: str,
        address: str,
        num_shards: int,
        on_tick: Callable[[], Awaitable[None]],
        peer_credentials: Callable[[], grpc.ChannelCredentials] | None = None,
    ) -> None:
        """`on_tick` runs after every heartbeat: it takes in what the others changed;
        `peer_credentials`: TLS credentials for calling the others (None: plaintext)."""
        self.store = store
        self.me = HostRecord(host_id, address)
        self.membership = Membership(store, self.me, num_shards, on_tick=on_tick)
        self.peers = Peers(peer_credentials)

    async def start(self, owner: ShardOwner) -> None:
        """Join the others and take this process's share of the shards for `owner`."""
        self.peers.secret = await self.store.cluster_secret()
        await self.membership.start(owner)

    async def stop(self) -> None:
        await self.membership.stop()
        await self.peers.close()

    # ---- calls on a shard's owner --------------------------------------------------------
    async def invoke(self, shard_id: int, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a named operation on the process owning `shard_id`."""
        address = self.membership.owner_address(shard_id)
        if address is None:
            raise errors.ShardNotOwned(shard_id)  # ours by the book, but not (or no longer) held
        return await self.peers.invoke(address, op, args)

    async def invoke_at(
        self, address: str, op: str, args: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Run a named operation on the process listening at `address`, within `timeout` s."""
        return await self.peers.invoke(address, op, args, timeout)

    def peer_addresses(self) -> list[str]:
        return self.membership.peer_addresses()

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
