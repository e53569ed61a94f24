"""GetWorkflowExecutionHistoryReverse: the history newest event first, in pages (what
`temporal workflow reset --type LastWorkflowTask` reads to find the last workflow task)."""

from __future__ import annotations

from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.tokens import page_token, read_page_token
from aion.history.engine import HistoryEngine
from aion.namespaces import Namespace

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000
INVALID_TOKEN = "Invalid NextPageToken."


async def get_workflow_history_reverse(
    engine: HistoryEngine, ns: Namespace, req: rr.GetWorkflowExecutionHistoryReverseRequest
) -> rr.GetWorkflowExecutionHistoryReverseResponse:
    """A page is the last `maximum_page_size` batches (the events each transition appended)
    before the token, whole: as the reference pages, by batches, so a page may hold more events
    than its size. There is a next page until the first event is sent."""
    execution = req.execution
    if req.next_page_token:
        token = read_page_token(req.next_page_token)
        try:
            run_id, last = str(token["run_id"]), int(str(token["last"]))
        except (KeyError, ValueError):
            raise errors.InvalidArgument(INVALID_TOKEN) from None
        if execution.run_id and execution.run_id != run_id:
            raise errors.InvalidArgument("RunId in the request does not match the NextPageToken.")
        key = (ns.id, execution.workflow_id, run_id)
    else:
        key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)
        last = 0
    ms = await engine.get_execution(key)
    if not last:
        last = ms.s.next_event_id - 1
    if last >= ms.s.next_event_id or last < 1:
        raise errors.InvalidArgument(INVALID_TOKEN)
    page_size = min(req.maximum_page_size, MAX_PAGE_SIZE)
    if page_size <= 0:
        page_size = DEFAULT_PAGE_SIZE
    events = await engine.read_history_batches_reverse(key, last, page_size)
    response = rr.GetWorkflowExecutionHistoryReverseResponse(
        history=history_pb.History(events=events)
    )
    first = events[-1].event_id if events else 1
    if first > 1:
        response.next_page_token = page_token({"run_id": key[2], "last": first - 1})
    return response
