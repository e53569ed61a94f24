"""SignalWorkflowExecution: append WorkflowExecutionSignaled and wake the workflow."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.api.activities import ensure_workflow_task
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import MutableState
from aion.namespaces import Namespace

MAX_REMEMBERED_REQUEST_IDS = 1000


async def signal_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.SignalWorkflowExecutionRequest
) -> None:
    key = await engine.resolve(
        ns.id, req.workflow_execution.workflow_id, req.workflow_execution.run_id
    )

    def signal(ms: MutableState) -> None:
        if not ms.running:
            raise errors.workflow_completed()
        if req.request_id and req.request_id in ms.s.request_ids:
            return  # a retried request: already applied
        if req.request_id:
            ms.s.request_ids = (ms.s.request_ids + [req.request_id])[-MAX_REMEMBERED_REQUEST_IDS:]
        ms.signal(
            req.signal_name,
            req.input if req.HasField("input") else None,
            req.identity,
            req.header if req.HasField("header") else None,
            req.request_id,
        )
        ensure_workflow_task(ms)

    await engine.update_execution(key, signal)
