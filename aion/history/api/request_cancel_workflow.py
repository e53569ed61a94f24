"""RequestCancelWorkflowExecution: record the request; the workflow decides what to do."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.api.activities import ensure_workflow_task
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import MutableState
from aion.namespaces import Namespace


async def request_cancel_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.RequestCancelWorkflowExecutionRequest
) -> None:
    execution = req.workflow_execution
    key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)

    def cancel(ms: MutableState) -> None:
        if req.first_execution_run_id and ms.s.first_run_id != req.first_execution_run_id:
            raise errors.workflow_not_found()
        if not ms.running:
            raise errors.workflow_completed()
        if ms.s.cancel_requested:
            return  # Temporal treats a repeated request as a no-op
        ms.request_cancel(req.reason, req.identity)
        ensure_workflow_task(ms)

    await engine.update_execution(key, cancel)
