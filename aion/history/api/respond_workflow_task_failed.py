"""RespondWorkflowTaskFailed: record the failure and retry the task."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion.common.tokens import TaskToken
from aion.history.api.respond_workflow_task_completed import current_workflow_task
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import MutableState


async def respond_workflow_task_failed(
    engine: HistoryEngine, req: rr.RespondWorkflowTaskFailedRequest
) -> rr.RespondWorkflowTaskFailedResponse:
    token = TaskToken.decode(req.task_token)
    key = (token.namespace_id, token.workflow_id, token.run_id)

    def fail(ms: MutableState) -> None:
        current_workflow_task(ms, token)
        ms.workflow_task.fail(
            req.cause, req.failure if req.HasField("failure") else None, req.identity
        )
        ms.workflow_task.schedule()

    await engine.update_execution(key, fail)
    return rr.RespondWorkflowTaskFailedResponse()
