"""ListWorkflowExecutions / CountWorkflowExecutions over the visibility table."""

from __future__ import annotations

import datetime
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.timeutil import SECOND, dur, ts
from aion.common.tokens import page
from aion.persistence import Store, VisibilityRecord
from aion.visibility.query import (
    ListQuery,
    QueryError,
    group_counts,
    parse_query,
    sort_records,
)
from aion.visibility.search_attributes import SearchAttributeRegistry, keyword_payload

Status = workflow_pb2.WorkflowExecutionStatus
STATUS_NAMES: dict[int, str] = {
    Status.WORKFLOW_EXECUTION_STATUS_RUNNING: "Running",
    Status.WORKFLOW_EXECUTION_STATUS_COMPLETED: "Completed",
    Status.WORKFLOW_EXECUTION_STATUS_FAILED: "Failed",
    Status.WORKFLOW_EXECUTION_STATUS_CANCELED: "Canceled",
    Status.WORKFLOW_EXECUTION_STATUS_TERMINATED: "Terminated",
    Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "ContinuedAsNew",
    Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "TimedOut",
}
DEFAULT_PAGE_SIZE = 1000


def _time(ns: int) -> datetime.datetime | None:
    if not ns:
        return None
    return datetime.datetime.fromtimestamp(ns / SECOND, tz=datetime.UTC)


def _record(v: VisibilityRecord, attributes: SearchAttributeRegistry) -> dict[str, Any]:
    """A visibility row as the query language sees it."""
    record: dict[str, Any] = {
        "WorkflowId": v.workflow_id,
        "RunId": v.run_id,
        "WorkflowType": v.workflow_type,
        "ExecutionStatus": STATUS_NAMES.get(v.status, "Unspecified"),
        "StartTime": _time(v.start_time_ns),
        "ExecutionTime": _time(v.execution_time_ns),
        "CloseTime": _time(v.close_time_ns),
        "TaskQueue": v.task_queue,
        "HistoryLength": v.history_length,
    }
    if v.close_time_ns:
        record["ExecutionDuration"] = v.close_time_ns - v.execution_time_ns
    if v.search_attributes:
        values = attributes.query_values(
            v.namespace_id, common_pb.SearchAttributes.FromString(v.search_attributes)
        )
        for name, value in values.items():
            record.setdefault(name, value)
    return {k: val for k, val in record.items() if val is not None}


def _parse(query: str, namespace_id: str, attributes: SearchAttributeRegistry) -> ListQuery:
    try:
        return parse_query(query, attributes.types(namespace_id))
    except QueryError as e:
        raise errors.InvalidArgument(str(e)) from None


async def _matching(
    store: Store, namespace_id: str, query: ListQuery, attributes: SearchAttributeRegistry
) -> list[tuple[dict[str, Any], VisibilityRecord]]:
    rows = await store.list_visibility(namespace_id)
    pairs = [(_record(v, attributes), v) for v in rows]
    return [(r, v) for r, v in pairs if query.matches(r)]


def execution_info(
    v: VisibilityRecord, attributes: SearchAttributeRegistry
) -> workflow_pb.WorkflowExecutionInfo:
    info = workflow_pb.WorkflowExecutionInfo(
        execution=common_pb.WorkflowExecution(workflow_id=v.workflow_id, run_id=v.run_id),
        type=common_pb.WorkflowType(name=v.workflow_type),
        start_time=ts(v.start_time_ns),
        status=v.status,  # type: ignore[arg-type]
        history_length=v.history_length,
        execution_time=ts(v.execution_time_ns),
        task_queue=v.task_queue,
    )
    if v.close_time_ns:
        info.close_time.CopyFrom(ts(v.close_time_ns))
        info.execution_duration.CopyFrom(dur(v.close_time_ns - v.execution_time_ns))
    if v.memo:
        info.memo.ParseFromString(v.memo)
    if v.search_attributes:
        shown = attributes.present(
            v.namespace_id, common_pb.SearchAttributes.FromString(v.search_attributes)
        )
        if shown.indexed_fields:
            info.search_attributes.CopyFrom(shown)
    return info


async def list_workflows(
    store: Store,
    namespace_id: str,
    req: rr.ListWorkflowExecutionsRequest,
    attributes: SearchAttributeRegistry,
) -> rr.ListWorkflowExecutionsResponse:
    query = _parse(req.query, namespace_id, attributes)
    matched = await _matching(store, namespace_id, query, attributes)
    ordered = sort_records([r for r, _ in matched], query.order_by)
    by_run = {r["RunId"]: v for r, v in matched}
    shown, following = page(ordered, req.next_page_token, req.page_size or DEFAULT_PAGE_SIZE)
    return rr.ListWorkflowExecutionsResponse(
        executions=[execution_info(by_run[r["RunId"]], attributes) for r in shown],
        next_page_token=following,
    )


async def count_workflows(
    store: Store,
    namespace_id: str,
    req: rr.CountWorkflowExecutionsRequest,
    attributes: SearchAttributeRegistry,
) -> rr.CountWorkflowExecutionsResponse:
    query = _parse(req.query, namespace_id, attributes)
    matched = [r for r, _ in await _matching(store, namespace_id, query, attributes)]
    response = rr.CountWorkflowExecutionsResponse(count=len(matched))
    if query.group_by:
        for values, count in group_counts(matched, query.group_by):
            group = response.groups.add(count=count)
            for value in values:
                group.group_values.append(keyword_payload("" if value is None else str(value)))
    return response
