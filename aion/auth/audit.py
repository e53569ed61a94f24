"""The audit log: every write, admin call and refused call, with who made it, by which
credential (its id, never its secret), on what, and how it ended. Each event is logged at once
(logger `aion.audit`, one JSON object in the message) and written to the store's `audit_log`
table in batches; the call it records answers once its batch is written, so an answered write is
in the log even if the process dies right after. With a retention, events older than it are
deleted at start and every `PURGE_INTERVAL_S` after."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict

from aion.auth.roles import Claims
from aion.common.timeutil import now_ns
from aion.persistence import AuditRecord, Store

log = logging.getLogger("aion.audit")

PURGE_INTERVAL_S = 3600.0


class AuditLog:
    def __init__(self, store: Store, retention_ns: int | None = None) -> None:
        """`retention_ns`: how long events are kept (None: for ever)."""
        self.store = store
        self.retention_ns = retention_ns
        self._purger: asyncio.Task[None] | None = None
        self._pending: list[AuditRecord] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._written: asyncio.Future[None] | None = None  # done when the pending batch is

    def record(
        self,
        claims: Claims | None,
        method: str,
        namespace: str,
        workflow_id: str,
        result: str,
    ) -> asyncio.Future[None]:
        """Record an event; the future is done once it is written (or its write failed and
        was logged: the event is then kept for the next write)."""
        event = AuditRecord(
            time_ns=now_ns(),
            subject=claims.subject if claims else "",
            auth_type=claims.auth_type if claims else "",
            credential_id=claims.credential_id if claims else "",
            method=method,
            namespace=namespace,
            workflow_id=workflow_id,
            result=result,
        )
        log.info(
            "audit %s",
            json.dumps(asdict(event)),
            extra={"namespace": namespace, "workflow_id": workflow_id},
        )
        self._pending.append(event)
        if self._writer is None:  # not started or stopped: written by the next flush
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
        self._wake.set()
        return self._written

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_when_woken())
        if self.retention_ns is not None:
            self._purger = loop.create_task(self._purge_periodically(self.retention_ns))

    async def stop(self) -> None:
        """Write what is left. The writer is stopped between writes, never in one: a write
        cancelled half-way could lose its batch."""
        if self._purger is not None:
            self._purger.cancel()
            self._purger = None
        async with self._lock:
            if self._writer is not None:
                self._writer.cancel()
                self._writer = None
        await self.flush()

    async def purge(self, retention_ns: int) -> int:
        """Delete the events older than `retention_ns`; how many there were."""
        deleted = await self.store.delete_audit_before(now_ns() - retention_ns)
        if deleted:
            log.info("deleted %d audit events past their retention", deleted)
        return deleted

    async def _purge_periodically(self, retention_ns: int) -> None:
        while True:
            try:
                await self.purge(retention_ns)
            except Exception:  # the database is down: next time
                log.exception("deleting old audit events failed")
            await asyncio.sleep(PURGE_INTERVAL_S)

    async def _write_when_woken(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write every event recorded so far."""
        async with self._lock:
            batch, self._pending = self._pending, []
            written, self._written = self._written, None
            if not batch:
                return
            try:
                await self.store.append_audit(batch)
            except Exception:
                log.exception("writing %d audit events failed; kept for the next write", len(batch))
                self._pending[:0] = batch
            finally:
                if written is not None and not written.done():
                    written.set_result(None)

    async def list(self, since_ns: int, namespace: str | None, limit: int) -> list[AuditRecord]:
        await self.flush()
        return await self.store.list_audit(since_ns, namespace, limit)
