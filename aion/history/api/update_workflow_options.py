"""UpdateWorkflowExecutionOptions: set or unset a running workflow's versioning override."""

from __future__ import annotations

from temporalio.api.enums.v1 import task_queue_pb2
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.timeutil import ts
from aion.common.versions import (
    pinned_version,
    pinned_version_missing,
    version_key,
    versioning_override,
)
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import MutableState
from aion.namespaces import Namespace

WORKFLOW_QUEUE = task_queue_pb2.TASK_QUEUE_TYPE_WORKFLOW
OPTION_PATHS = {f.name for f in workflow_pb.WorkflowExecutionOptions.DESCRIPTOR.fields}


async def update_workflow_options(
    engine: HistoryEngine, ns: Namespace, req: rr.UpdateWorkflowExecutionOptionsRequest
) -> rr.UpdateWorkflowExecutionOptionsResponse:
    if not req.HasField("update_mask"):
        raise errors.InvalidArgument("UpdateMask is required")
    for path in req.update_mask.paths:
        if path not in OPTION_PATHS:
            raise errors.InvalidArgument(
                f'error parsing UpdateMask: proto: invalid path "{path}" for message '
                '"temporal.api.workflow.v1.WorkflowExecutionOptions"'
            )
    options = req.workflow_execution_options
    override = None
    if "versioning_override" in req.update_mask.paths and options.HasField("versioning_override"):
        override = versioning_override(options.versioning_override)
    execution = req.workflow_execution
    key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)

    def update(ms: MutableState) -> rr.UpdateWorkflowExecutionOptionsResponse:
        if not ms.running:
            raise errors.workflow_completed()
        if "versioning_override" in req.update_mask.paths:
            pinned = pinned_version(override) if override is not None else None
            if pinned is not None:
                key, queue = version_key(*pinned), ms.s.task_queue
                if engine.deployments.route(ns.id, queue, WORKFLOW_QUEUE, "", key) != key:
                    raise pinned_version_missing(*pinned, queue)
            ms.versioning.set_override(override, req.identity)
        response = rr.UpdateWorkflowExecutionOptionsResponse(update_time=ts(ms.now()))
        if ms.s.versioning_override is not None:
            response.workflow_execution_options.versioning_override.CopyFrom(
                ms.s.versioning_override
            )
        return response

    return await engine.update_execution(key, update)
