"""Group commit: transitions queued while a write is in flight go to the database together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aion import metrics
from aion.persistence.store import ExecutionTransaction, StoreUnavailableError

# Writes a batch in one database transaction; one result per transition (None: committed).
BatchWriter = Callable[[list[ExecutionTransaction]], Awaitable[list[Exception | None]]]


class GroupCommit:
    """One flush at a time; whatever is queued meanwhile becomes the next batch."""

    def __init__(self, write_batch: BatchWriter) -> None:
        self._write_batch = write_batch
        self._pending: list[tuple[ExecutionTransaction, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def commit(self, tx: ExecutionTransaction) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((tx, future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        await future

    async def drain(self) -> None:
        """Wait for the flush in flight, if any. A drainer that is cancelled (a caller gone)
        leaves the flush running: cancelling it would strand its batch's committers."""
        if self._flusher is not None:
            await asyncio.wait([self._flusher])

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                started = time.perf_counter()
                try:
                    results = await self._write_batch([tx for tx, _ in batch])
                except Exception as e:  # the whole batch failed (disk error, lost connection)
                    results = [e] * len(batch)
                except BaseException:
                    # Stopped (cancelled at shutdown): no committer may wait for ever.
                    stopped = StoreUnavailableError("the commit was stopped", outcome_unknown=True)
                    waiting, self._pending = batch + self._pending, []
                    for _, future in waiting:
                        if not future.done():
                            future.set_exception(stopped)
                    raise
                metrics.group_commit(len(batch), time.perf_counter() - started)
                for (_, future), error in zip(batch, results, strict=False):
                    if future.done():
                        continue
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(error)
        finally:
            self._flusher = None
