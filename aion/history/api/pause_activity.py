"""PauseActivity: stop dispatching an activity's attempts until it is unpaused."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.api.activities import select_activities
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import MutableState
from aion.namespaces import Namespace


async def pause_activity(
    engine: HistoryEngine, ns: Namespace, req: rr.PauseActivityRequest
) -> None:
    execution = req.execution
    key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)

    def pause(ms: MutableState) -> None:
        for ai in select_activities(ms, req):
            if ai.paused:
                if req.request_id and ai.pause_request_id == req.request_id:
                    continue  # a retried request
                raise errors.FailedPrecondition("activity is already paused")
            ms.activities.pause(ai, req.identity, req.reason, req.request_id)

    await engine.update_execution(key, pause)
