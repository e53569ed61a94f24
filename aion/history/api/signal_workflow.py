"""SignalWorkflowExecution: append WorkflowExecutionSignaled and wake the workflow."""

from __future__ import annotations

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.api import links
from aion.history.api.activities import ensure_workflow_task
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import MutableState
from aion.namespaces import Namespace

MAX_REMEMBERED_REQUEST_IDS = 1000
BLOB_SIZE_EXCEEDS_LIMIT = "Blob data size exceeds limit."


async def signal_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.SignalWorkflowExecutionRequest
) -> rr.SignalWorkflowExecutionResponse:
    execution = req.workflow_execution
    key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)
    await engine.update_execution(
        key,
        lambda ms: deliver_signal(
            ms,
            req.signal_name,
            req.input if req.HasField("input") else None,
            req.header if req.HasField("header") else None,
            req.identity,
            req.request_id,
        ),
    )
    return rr.SignalWorkflowExecutionResponse(
        link=links.to_request(ns.name, key, req.request_id, links.SIGNALED)
    )


def deliver_signal(
    ms: MutableState,
    name: str,
    payloads: common_pb.Payloads | None,
    header: common_pb.Header | None,
    identity: str,
    request_id: str,
) -> None:
    """Append the signal (once per request id) and make sure the workflow wakes up; past
    its size or the execution's signal limit, INVALID_ARGUMENT as Temporal answers."""
    if not ms.running:
        raise errors.workflow_completed()
    limits = ms.env.limits
    if payloads is not None and limits.blob_too_large(payloads.ByteSize(), "signal input"):
        raise errors.InvalidArgument(BLOB_SIZE_EXCEEDS_LIMIT)
    if 0 < limits.signals_per_execution <= ms.s.signal_count:
        raise errors.InvalidArgument("exceeded workflow execution limit for signal events")
    if request_id and not ms.remember_request_id(request_id, MAX_REMEMBERED_REQUEST_IDS):
        return  # a retried request: already applied
    ms.signal(name, payloads, identity, header, request_id)
    ensure_workflow_task(ms)
