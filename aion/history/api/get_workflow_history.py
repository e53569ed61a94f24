"""GetWorkflowExecutionHistory: pages of events, long polls for new events or the close event."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.tokens import page_token, read_page_token
from aion.history.engine import HistoryEngine
from aion.namespaces import Namespace

DEFAULT_PAGE_SIZE = 1000
MAX_LONG_POLL_S = 20.0
CLOSE_EVENT = workflow_pb2.HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT


async def get_workflow_history(
    engine: HistoryEngine,
    ns: Namespace,
    req: rr.GetWorkflowExecutionHistoryRequest,
    deadline_s: float,
) -> rr.GetWorkflowExecutionHistoryResponse:
    if req.next_page_token:
        token = read_page_token(req.next_page_token)
        key = (ns.id, req.execution.workflow_id, str(token["run_id"]))
        next_event_id = int(token["next"])  # type: ignore[call-overload]
    else:
        key = await engine.resolve(ns.id, req.execution.workflow_id, req.execution.run_id)
        next_event_id = 1
    wait_budget = min(MAX_LONG_POLL_S, max(deadline_s - 1.0, 0.0))
    page_size = req.maximum_page_size if req.maximum_page_size > 0 else DEFAULT_PAGE_SIZE
    ms = await engine.get_execution(key)

    loop = asyncio.get_running_loop()
    until = loop.time() + wait_budget
    if req.history_event_filter_type == CLOSE_EVENT:
        while ms.running and req.wait_new_event and (remaining := until - loop.time()) > 0:
            await engine.wait_for_change(key, remaining)
            ms = await engine.get_execution(key)
        if ms.running:
            # Not closed yet: the caller polls again with this token.
            return rr.GetWorkflowExecutionHistoryResponse(
                next_page_token=page_token({"run_id": key[2], "next": next_event_id})
            )
        events = await engine.read_history(key, ms.s.completion_event_id, 1)
        return rr.GetWorkflowExecutionHistoryResponse(history=history_pb.History(events=events))

    if req.wait_new_event and ms.running and next_event_id >= ms.s.next_event_id:
        await engine.wait_for_change(key, wait_budget)
        ms = await engine.get_execution(key)
    if next_event_id > ms.s.next_event_id:
        raise errors.InvalidArgument("Invalid NextPageToken.")
    events = await engine.read_history(key, next_event_id, page_size)
    response = rr.GetWorkflowExecutionHistoryResponse(history=history_pb.History(events=events))
    last = events[-1].event_id if events else next_event_id - 1
    if last + 1 < ms.s.next_event_id or (req.wait_new_event and ms.running):
        response.next_page_token = page_token({"run_id": key[2], "next": last + 1})
    return response
