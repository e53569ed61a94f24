"""UnpauseWorkflowExecution. Pausing a workflow is off (as on Temporal's dev server, where
PauseWorkflowExecution answers UNIMPLEMENTED), so no workflow is ever paused: unpausing one
that exists answers as Temporal does for a workflow that is not paused."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.engine import HistoryEngine
from aion.namespaces import Namespace


async def unpause_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.UnpauseWorkflowExecutionRequest
) -> None:
    key = await engine.resolve(ns.id, req.workflow_id, req.run_id)
    ms = await engine.get_execution(key)
    if not ms.running:
        raise errors.workflow_completed()
    raise errors.FailedPrecondition("workflow is not paused.")
