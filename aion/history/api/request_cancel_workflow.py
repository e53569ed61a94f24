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
        deliver_cancel(ms, req.reason, req.identity)

    await engine.update_execution(key, cancel)


def deliver_cancel(ms: MutableState, reason: str, identity: str) -> None:
    """Record a cancel request once and wake the workflow; it decides what to do.

    As in Temporal, cancelling a closed workflow, or one already asked, succeeds as a no-op.
    """
    if not ms.running or ms.s.cancel_requested:
        return
    ms.request_cancel(reason, identity)
    ensure_workflow_task(ms)
