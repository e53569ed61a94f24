"""TerminateWorkflowExecution: close the run at once with WorkflowExecutionTerminated."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import MutableState
from aion.namespaces import Namespace


async def terminate_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.TerminateWorkflowExecutionRequest
) -> None:
    execution = req.workflow_execution
    key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)

    def terminate(ms: MutableState) -> None:
        if req.first_execution_run_id and ms.s.first_run_id != req.first_execution_run_id:
            raise errors.workflow_not_found()
        if not ms.running:
            raise errors.workflow_completed()
        ms.terminate(req.reason, req.details if req.HasField("details") else None, req.identity)

    await engine.update_execution(key, terminate)
