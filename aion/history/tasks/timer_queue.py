"""Fires durable timer tasks at their time and hands them to the history engine."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable

from aion import errors
from aion.persistence import StoreUnavailableError, TimerTask

log = logging.getLogger(__name__)

RETRY_DELAY_NS = 1_000_000_000
DEFER_DELAY_NS = 100_000_000
MAX_CONCURRENT = 64


class RetryLater(Exception):
    """A task that cannot run yet (it waits on another execution); it is retried shortly."""


class TimerQueue:
    """An in-memory heap over the timer tasks table; `handler` processes each due task."""

    def __init__(self, handler: Callable[[TimerTask], Awaitable[None]]) -> None:
        self._handler = handler
        self._heap: list[tuple[int, int, TimerTask]] = []
        self._held: set[tuple[int, int]] = set()  # (shard id, task id) of the tasks in the heap
        self._running: set[tuple[int, int]] = set()  # and of those being processed
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)

    def add(self, tasks: list[TimerTask]) -> int:
        """Queue tasks; one queued or being processed already is left out. How many were
        queued."""
        added = 0
        for task in tasks:
            key = (task.shard_id, task.task_id)
            if key not in self._held and key not in self._running:
                self._held.add(key)
                heapq.heappush(self._heap, (task.fire_time_ns, task.task_id, task))
                added += 1
        if added:
            self._wakeup.set()
        return added

    def discard(self, predicate: Callable[[TimerTask], bool]) -> None:
        """Forget the pending tasks `predicate` selects (a shard that moved to another process)."""
        self._heap = [entry for entry in self._heap if not predicate(entry[2])]
        heapq.heapify(self._heap)
        self._held = {(task.shard_id, task.task_id) for _, _, task in self._heap}

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._runner:
            self._runner.cancel()
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            now = time.time_ns()
            while self._heap and self._heap[0][0] <= now:
                _, _, task = heapq.heappop(self._heap)
                self._held.discard((task.shard_id, task.task_id))
                self._running.add((task.shard_id, task.task_id))
                await self._slots.acquire()
                job = asyncio.get_running_loop().create_task(self._process(task))
                self._inflight.add(job)
                job.add_done_callback(self._inflight.discard)
            timeout = (self._heap[0][0] - now) / 1e9 if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def _process(self, task: TimerTask) -> None:
        log.debug("timer %s %s for %s", task.task_id, task.kind, task.workflow_id)
        delay_ns: int | None = None
        try:
            await self._handler(task)
        except asyncio.CancelledError:
            raise
        except RetryLater as e:
            log.debug("timer task %s (%s) deferred: %s", task.task_id, task.kind, e)
            delay_ns = DEFER_DELAY_NS
        except (StoreUnavailableError, errors.Unavailable) as e:  # the database is down
            log.warning("timer task %s (%s) failed (%s); retrying", task.task_id, task.kind, e)
            delay_ns = RETRY_DELAY_NS
        except Exception:
            log.exception("timer task %s (%s) failed; retrying", task.task_id, task.kind)
            delay_ns = RETRY_DELAY_NS
        finally:
            self._running.discard((task.shard_id, task.task_id))
            self._slots.release()
        if delay_ns is not None:
            task.fire_time_ns = time.time_ns() + delay_ns
            self.add([task])
