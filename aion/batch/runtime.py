"""Runs the batch operations of the shards this process owns.

A job lives on the history shard of its job id, like a workflow: the process owning the shard
runs it. It first resolves its targets (the query's workflows, or the listed executions with
their current runs) and saves them with the job, then handles them in order at the job's rate,
saving its position and counts at least every `CHECKPOINT_S`. After a crash or a shard move the
new owner resumes from the saved position: the few targets handled since are handled again, which
changes nothing (see `aion.batch.operations`), and are counted once, since the counts are saved
with the position.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import batch_operation_pb2, failed_cause_pb2
from temporalio.api.errordetails.v1 import message_pb2 as details_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.batch import operations
from aion.batch.validation import adjusted_query
from aion.history.engine import HistoryEngine
from aion.history.ports import Op
from aion.ids import uuid7
from aion.persistence import (
    BatchOperationRecord,
    ConditionFailedError,
    ShardOwnershipLostError,
    Store,
    StoreUnavailableError,
)
from aion.visibility import listing

log = logging.getLogger(__name__)

State = batch_operation_pb2.BatchOperationState
RUNNING = State.BATCH_OPERATION_STATE_RUNNING
COMPLETED = State.BATCH_OPERATION_STATE_COMPLETED
FAILED = State.BATCH_OPERATION_STATE_FAILED

# Temporal's defaults: `worker.batcherRPS` and `frontend.MaxConcurrentBatchOperationPerNamespace`.
RPS_KEY = "worker.batcherRPS"
MAX_CONCURRENT_KEY = "frontend.MaxConcurrentBatchOperationPerNamespace"
DEFAULT_RPS = 50.0
DEFAULT_MAX_CONCURRENT = 1
CHECKPOINT_S = 0.5  # the longest a job runs without saving its position
PAGE_SIZE = 1000
RETRY_S = 1.0  # a job that failed for want of its store or a shard tries again after this
ATTEMPTS = 50  # attempts on one target while its shard or the store is unavailable (Temporal's)
ATTEMPT_BACKOFF_S = 0.2
STOP_ATTEMPTS = 5
TRANSIENT = (
    errors.Unavailable,  # ShardNotOwned included: its owner is moving
    errors.ResourceExhausted,
    errors.DeadlineExceeded,
    StoreUnavailableError,
    ConditionFailedError,
)

RESOURCE_EXHAUSTED = failed_cause_pb2.ResourceExhaustedCause
RESOURCE_EXHAUSTED_SCOPE = failed_cause_pb2.ResourceExhaustedScope
Key = tuple[str, str]  # namespace id, job id


@dataclass
class _Job:
    record: BatchOperationRecord
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    targets: list[list[str]] = field(default_factory=list)


class BatchRuntime:
    """The batch jobs of this process's shards: a listener of the engine's shards, and the
    server of the "batch_apply" operation (one target, on its workflow's shard)."""

    def __init__(self, engine: HistoryEngine, store: Store) -> None:
        self.engine = engine
        self.store = store
        self.rps = DEFAULT_RPS
        self.max_concurrent = DEFAULT_MAX_CONCURRENT
        self._jobs: dict[Key, _Job] = {}

    def operations(self) -> dict[str, Op]:
        return dict(operations.OPS)

    # ---- shards ----------------------------------------------------------------------------
    async def shard_acquired(self, shard_id: int) -> None:
        for record in await self.store.list_batch_operations(shard_id=shard_id, running=True):
            key = (record.namespace_id, record.job_id)
            if key not in self._jobs:
                self._spawn(key, _Job(record))

    def shard_released(self, shard_id: int) -> None:
        for key in [k for k in self._jobs if self.engine.shard_id_of(*k) == shard_id]:
            job = self._jobs.pop(key)
            if job.task is not None:
                job.task.cancel()

    async def stop(self) -> None:
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        self._jobs.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- operations (on the job's shard; the frontend forwards the call there) -------------
    async def start_job(self, namespace_id: str, request: rr.StartBatchOperationRequest) -> None:
        key = (namespace_id, request.job_id)
        shard = self.engine.shard_for(*key)
        existing = await self.store.get_batch_operation(*key)
        running = await self.store.list_batch_operations(namespace_id=namespace_id, running=True)
        if len(running) >= self.max_concurrent:
            raise errors.ResourceExhausted(
                "Max concurrent batch operations is reached",
                details_pb.ResourceExhaustedFailure(
                    cause=RESOURCE_EXHAUSTED.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT,
                    scope=RESOURCE_EXHAUSTED_SCOPE.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
                ),
            )
        if existing is not None:
            raise _already_exists(existing)
        now = self.engine.clock()
        record = BatchOperationRecord(
            namespace_id=namespace_id,
            job_id=request.job_id,
            shard_id=shard.shard_id,
            run_id=uuid7(),
            request=request.SerializeToString(),
            state=RUNNING,
            start_time_ns=now,
            close_time_ns=0,
            targets="",
            total=0,
            position=0,
            succeeded=0,
            failed=0,
            version=1,
        )
        try:
            await self.store.save_batch_operation(record, shard.range_id, None)
        except ConditionFailedError:
            found = await self.store.get_batch_operation(*key)
            raise _already_exists(found or record) from None
        self._spawn(key, _Job(record))

    async def stop_job(self, namespace_id: str, job_id: str) -> None:
        key = (namespace_id, job_id)
        shard = self.engine.shard_for(*key)
        job = self._jobs.pop(key, None)
        if job is not None and job.task is not None:
            job.task.cancel()
            await asyncio.gather(job.task, return_exceptions=True)
        for _ in range(STOP_ATTEMPTS):
            record = await self.store.get_batch_operation(*key)
            if record is None:
                raise errors.workflow_not_found(job_id)
            if record.state != RUNNING:
                raise errors.workflow_completed()
            closed = dataclasses.replace(
                record,
                state=FAILED,
                close_time_ns=self.engine.clock(),
                targets="",
                version=record.version + 1,
            )
            if job is not None and job.record.position > record.position:  # newer than saved
                closed.position = job.record.position
                closed.succeeded, closed.failed = job.record.succeeded, job.record.failed
            try:
                await self.store.save_batch_operation(closed, shard.range_id, record.version)
                return
            except ConditionFailedError:
                pass  # another stop, or its runner elsewhere saving progress: read it again
        raise errors.Unavailable("the batch operation was changed concurrently; retry")

    async def read(self, namespace_id: str, job_id: str) -> BatchOperationRecord:
        """The job as last saved, with the progress of its runner when it runs here."""
        record = await self.store.get_batch_operation(namespace_id, job_id)
        if record is None:
            raise errors.workflow_not_found(job_id)
        job = self._jobs.get((namespace_id, job_id))
        if job is not None and record.state == RUNNING:
            live = job.record
            record.total, record.position = live.total, live.position
            record.succeeded, record.failed = live.succeeded, live.failed
        return record

    # ---- running ---------------------------------------------------------------------------
    def _spawn(self, key: Key, job: _Job, delay_s: float = 0.0) -> None:
        self._jobs[key] = job
        job.task = asyncio.get_running_loop().create_task(self._run(key, job, delay_s))

    async def _run(self, key: Key, job: _Job, delay_s: float) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        try:
            await self._work(job)
        except asyncio.CancelledError:
            raise
        except (errors.ShardNotOwned, ShardOwnershipLostError):
            own_shard = self.engine.shard_id_of(*key)
            if own_shard not in self.engine.shards:
                self._jobs.pop(key, None)
                return  # its new owner resumes it
            self._retry(key, job)
        except Exception as e:
            log.warning("batch operation %s: %s; retrying", key[1], e)
            self._retry(key, job)

    def _retry(self, key: Key, job: _Job) -> None:
        """Start over from the saved state shortly."""

        async def reload() -> None:
            await asyncio.sleep(RETRY_S)
            record = await self.store.get_batch_operation(*key)
            if self._jobs.get(key) is not job:
                return
            if record is None or record.state != RUNNING:
                self._jobs.pop(key, None)
                return
            self._spawn(key, _Job(record))

        job.task = asyncio.get_running_loop().create_task(reload())

    async def _work(self, job: _Job) -> None:
        record = job.record
        batch = rr.StartBatchOperationRequest.FromString(record.request)
        if not record.targets:
            try:
                targets = await self._resolve(record.namespace_id, batch)
            except errors.InvalidArgument as e:
                log.info("batch operation %s failed: %s", record.job_id, e.message)
                await self._close(job, FAILED)
                return
            record.targets = json.dumps(targets, separators=(",", ":"))
            record.total = len(targets)
            await self._save(job)
        job.targets = json.loads(record.targets)
        rps = batch.max_operations_per_second or self.rps
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        saved_at = loop.time()
        while record.position < len(job.targets):
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at = max(next_at, loop.time() - 1.0) + 1.0 / rps
            workflow_id, run_id = job.targets[record.position]
            done = await self._handle(record.namespace_id, batch, workflow_id, run_id)
            record.position += 1
            if done:
                record.succeeded += 1
            else:
                record.failed += 1
            if loop.time() - saved_at >= CHECKPOINT_S:
                await self._save(job)
                saved_at = loop.time()
        await self._close(job, COMPLETED)

    async def _handle(
        self, namespace_id: str, batch: rr.StartBatchOperationRequest, workflow_id: str, run_id: str
    ) -> bool:
        """Apply the job's operation to one workflow: True when done (or nothing was there to
        act on, as Temporal counts it), False when it failed."""
        kind, request, extra = operations.build(batch, workflow_id, run_id)
        for _ in range(ATTEMPTS):
            try:
                await operations.apply(self.engine, namespace_id, kind, request, extra)
                return True
            except errors.NotFound:
                return True
            except TRANSIENT:
                await asyncio.sleep(ATTEMPT_BACKOFF_S)
            except errors.ServiceError as e:
                log.debug("batch operation %s on %s: %s", batch.job_id, workflow_id, e.message)
                return False
        return False

    async def _resolve(
        self, namespace_id: str, batch: rr.StartBatchOperationRequest
    ) -> list[list[str]]:
        """The (workflow id, run id) pairs the job acts on, fixed once."""
        if not batch.executions and not batch.target_executions:
            query = adjusted_query(batch)
            targets: list[list[str]] = []
            token = b""
            while True:
                page = await listing.list_workflows(
                    self.store,
                    namespace_id,
                    rr.ListWorkflowExecutionsRequest(
                        namespace=batch.namespace,
                        query=query,
                        page_size=PAGE_SIZE,
                        next_page_token=token,
                    ),
                    self.engine.namespaces.search_attributes,
                )
                targets.extend(
                    [e.execution.workflow_id, e.execution.run_id] for e in page.executions
                )
                token = page.next_page_token
                if not token:
                    return targets
        pairs = [(e.workflow_id, e.run_id) for e in batch.executions] + [
            (e.business_id, e.run_id) for e in batch.target_executions
        ]
        resolved = []
        for workflow_id, run_id in pairs:
            if not run_id:  # the current run now, so that a resumed job acts on the same one
                current = await self.store.get_current_execution(namespace_id, workflow_id)
                run_id = current.run_id if current is not None else ""
            resolved.append([workflow_id, run_id])
        return resolved

    async def _save(self, job: _Job) -> None:
        record = job.record
        shard = self.engine.shard_for(record.namespace_id, record.job_id)
        saved = dataclasses.replace(record, version=record.version + 1)
        await self.store.save_batch_operation(saved, shard.range_id, record.version)
        record.version = saved.version

    async def _close(self, job: _Job, state: int) -> None:
        record = job.record
        record.state = state
        record.close_time_ns = self.engine.clock()
        record.targets = ""  # no longer needed: the request names what it targeted
        await self._save(job)
        key = (record.namespace_id, record.job_id)
        if self._jobs.get(key) is job:
            del self._jobs[key]


def _already_exists(record: BatchOperationRecord) -> errors.AlreadyExists:
    if record.state == RUNNING:
        message = (
            f"Workflow execution is already running. WorkflowId: {record.job_id}, "
            f"RunId: {record.run_id}."
        )
    else:
        message = (
            f"Workflow execution already finished. WorkflowId: {record.job_id}, RunId: "
            f"{record.run_id}. Workflow Id reuse policy: reject duplicate workflow Id."
        )
    return errors.workflow_already_started(message, "", record.run_id)
