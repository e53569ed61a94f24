"""UnpauseActivity: let a paused activity run again, optionally from attempt 1."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion.common.durations import capped_ns
from aion.history.api.activities import select_activities
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import MutableState
from aion.namespaces import Namespace


async def unpause_activity(
    engine: HistoryEngine, ns: Namespace, req: rr.UnpauseActivityRequest
) -> None:
    execution = req.execution
    key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)

    def unpause(ms: MutableState) -> None:
        for ai in select_activities(ms, req):
            if ai.paused:
                ms.activities.unpause(
                    ai, req.reset_attempts, req.reset_heartbeat, capped_ns(req.jitter)
                )

    await engine.update_execution(key, unpause)
