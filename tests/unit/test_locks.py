"""A second execution lock taken while holding one (a replicated run and the competing run of
its workflow id) is waited for only so long: two holders never wait on each other for ever."""

from __future__ import annotations

import asyncio

import pytest

from aion import errors
from aion.history.engine import locked_within


async def test_two_holders_taking_each_others_lock_do_not_deadlock() -> None:
    first, second = asyncio.Lock(), asyncio.Lock()
    both_hold = asyncio.Barrier(2)

    async def hold_then_take(mine: asyncio.Lock, theirs: asyncio.Lock) -> str:
        async with mine:
            await both_hold.wait()
            try:
                async with locked_within(theirs, 0.2, "busy"):
                    return "took both"
            except errors.Unavailable as e:
                return e.message

    outcomes = await asyncio.wait_for(
        asyncio.gather(hold_then_take(first, second), hold_then_take(second, first)), 5
    )
    # Both gave up (each held the other's lock throughout its wait), or one gave up and
    # released its lock in time for the other.
    assert "busy" in outcomes
    assert not first.locked() and not second.locked()


async def test_a_lock_freed_in_time_is_taken() -> None:
    lock = asyncio.Lock()
    await lock.acquire()
    asyncio.get_running_loop().call_later(0.05, lock.release)
    async with locked_within(lock, 5, "busy"):
        assert lock.locked()
    assert not lock.locked()


async def test_a_lock_held_too_long_is_unavailable() -> None:
    lock = asyncio.Lock()
    async with lock:
        with pytest.raises(errors.Unavailable, match="busy"):
            async with locked_within(lock, 0.05, "busy"):
                pass
