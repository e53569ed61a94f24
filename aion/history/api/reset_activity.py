"""ResetActivity: start an activity over from attempt 1 (a running attempt is told to stop)."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion.common.durations import capped_ns
from aion.history.api import update_activity_options
from aion.history.api.activities import select_activities
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import MutableState
from aion.namespaces import Namespace


async def reset_activity(
    engine: HistoryEngine, ns: Namespace, req: rr.ResetActivityRequest
) -> None:
    execution = req.execution
    key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)

    def reset(ms: MutableState) -> None:
        for ai in select_activities(ms, req):
            ms.activities.reset(ai, req.reset_heartbeat, req.keep_paused, capped_ns(req.jitter))

    await engine.update_execution(key, reset)
    if req.restore_original_options:
        restore = rr.UpdateActivityOptionsRequest(
            namespace=req.namespace, execution=req.execution, restore_original=True
        )
        which = req.WhichOneof("activity")
        if which == "id":
            restore.id = req.id
        elif which == "type":
            restore.type = req.type
        else:
            restore.match_all = True
        await update_activity_options.update_activity_options(engine, ns, restore)
