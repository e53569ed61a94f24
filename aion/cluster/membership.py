"""Membership: the live server processes and which one owns each history shard."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aion.persistence import HostRecord, Store, StoreUnavailableError

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
LEASE_S = 5.0  # a process silent this long is gone: its shards move to the others


def rendezvous_owner(host_ids: list[str], shard_id: int) -> str:
    """The host with the highest hash for the shard: every process agrees without talking, and
    a host joining or leaving moves only the shards it gains or loses."""
    return max(host_ids, key=lambda host: hashlib.blake2b(f"{host}/{shard_id}".encode()).digest())


class ShardOwner(Protocol):
    """What serves the shards this process holds (the history engine)."""

    async def acquire_shard(self, shard_id: int) -> None: ...

    def release_shard(self, shard_id: int) -> None: ...

    def owned_shards(self) -> dict[int, int]:
        """Shard id to the range id held."""
        ...


class Membership:
    """Heartbeats this process, keeps the live host list, and moves shard leases to match it."""

    def __init__(
        self,
        store: Store,
        me: HostRecord,
        num_shards: int,
        on_tick: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.me = me
        self.num_shards = num_shards
        self._on_tick = on_tick
        self.hosts: dict[str, str] = {me.host_id: me.address}  # host id -> address
        self._owner: ShardOwner | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._failing = False  # the last heartbeat did not reach the database
        self._back_at: float | None = None  # when heartbeats got through again (monotonic)

    def owner_address(self, shard_id: int) -> str | None:
        """Where the shard's owner listens, as far as this process knows; None when it is us."""
        owner = rendezvous_owner(sorted(self.hosts), shard_id)
        return None if owner == self.me.host_id else self.hosts[owner]

    def peer_addresses(self) -> list[str]:
        return [addr for host, addr in self.hosts.items() if host != self.me.host_id]

    async def start(self, owner: ShardOwner) -> None:
        """Take this process's share of the shards for `owner`, then keep it matched."""
        self._owner = owner
        await self.tick()
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        with contextlib.suppress(Exception):
            await self.store.leave(self.me.host_id)  # the others take our shards at once

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self.tick()
            except StoreUnavailableError as e:
                self._failing = True
                log.warning("membership heartbeat failed (%s); retrying", e)
            except Exception:
                log.exception("membership heartbeat failed; retrying")

    async def tick(self) -> None:
        """Renew our lease, then take the shards that are ours and let go of the others."""
        live = {h.host_id: h.address for h in await self.store.heartbeat(self.me, LEASE_S)}
        now = time.monotonic()
        if self._failing:
            self._failing = False
            self._back_at = now
        if self._back_at is not None and now - self._back_at < LEASE_S:
            # The database was unreachable: no heartbeat got through, the others' no more than
            # ours. Until they have had a lease's time to renew, hosts known before stay live,
            # so that the shards do not all move to whichever process came back first.
            live = {**self.hosts, **live}
        else:
            self._back_at = None
        self.hosts = live
        self.hosts[self.me.host_id] = self.me.address
        ids = sorted(self.hosts)
        mine = {s for s in range(self.num_shards) if rendezvous_owner(ids, s) == self.me.host_id}
        owner = self._owner
        assert owner is not None, "tick before start"
        held = owner.owned_shards()
        current = await self.store.shard_range_ids()
        for shard_id, range_id in sorted(held.items()):
            if shard_id not in mine or current.get(shard_id) != range_id:
                owner.release_shard(shard_id)  # not ours any more, or taken while we looked away
        owned = set(owner.owned_shards())
        for shard_id in sorted(mine - owned):
            try:
                await owner.acquire_shard(shard_id)
            except Exception as e:  # e.g. a paused owner's transaction still holds it
                log.warning("could not acquire shard %s yet (%s); retrying", shard_id, e)
        if self._on_tick is not None:
            await self._on_tick()
