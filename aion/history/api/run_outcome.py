"""How a run ended, for a schedule watching the runs it started (on the run's shard)."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import workflow_pb2

from aion import errors
from aion.common.codec import pack
from aion.history.engine import HistoryEngine

Status = workflow_pb2.WorkflowExecutionStatus


async def run_outcome(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    """The run's `status` (None when it is gone); for a run that continued as new into a running
    one, that run's id as `next_run_id`; for a closed run, its closing event as `closing`."""
    namespace_id, workflow_id, run_id = args["run"]
    try:
        ms = await engine.get_execution((namespace_id, workflow_id, run_id))
    except errors.NotFound:
        return {"status": None}
    status = ms.s.status
    if status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING:
        return {"status": status}
    if status == Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
        try:
            current = await engine.current_execution(namespace_id, workflow_id)
        except errors.NotFound:
            current = None
        if current is not None and current.running:
            return {"status": status, "next_run_id": current.run_id}
    closing = await engine.read_history(
        (namespace_id, workflow_id, run_id), ms.s.completion_event_id, 1
    )
    return {"status": status, "closing": pack(closing[0]) if closing else None}
