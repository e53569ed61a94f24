"""DeleteWorkflowExecution: a run is deleted (history, state, visibility) by a durable task;
a running one is terminated first."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion.history.api.reset_workflow import HISTORY_SERVICE
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import MutableState
from aion.namespaces import Namespace

TERMINATE_REASON = "Delete workflow execution"


async def delete_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.DeleteWorkflowExecutionRequest
) -> rr.DeleteWorkflowExecutionResponse:
    execution = req.workflow_execution
    key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)

    def delete(ms: MutableState) -> None:
        if ms.running:
            ms.terminate(TERMINATE_REASON, None, HISTORY_SERVICE)
        ms.delete_now()

    await engine.update_execution(key, delete)
    return rr.DeleteWorkflowExecutionResponse()
