"""ListWorkflowExecutions / CountWorkflowExecutions over the visibility table.

The filter runs in SQL (`aion.visibility.sql`); where its translation is wider than the filter,
the rows the store returns are re-checked here. Listings walk the default order (open runs
first, then CloseTime and StartTime descending, RunId) from a keyset page token, so a page costs
the same however many rows precede it, and rows written between pages are neither repeated nor
skipped."""

from __future__ import annotations

import datetime
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.timeutil import dur, ts
from aion.common.tokens import page_token, read_page_token
from aion.persistence import Store, VisibilityKey, VisibilityRecord, visibility_key
from aion.visibility.query import (
    EXECUTION_STATUSES,
    ListQuery,
    QueryError,
    datetime_from_nanos,
    group_counts,
    parse_query,
)
from aion.visibility.search_attributes import SearchAttributeRegistry, keyword_payload
from aion.visibility.sql import GROUP_COLUMNS, translate

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
_BATCH = 500  # rows fetched at a time when the filter is re-checked here


def _time(ns: int) -> datetime.datetime | None:
    return datetime_from_nanos(ns) if ns else None


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
        "HistorySizeBytes": v.history_size_bytes,
        "StateTransitionCount": v.state_transition_count,
        "ParentWorkflowId": v.parent_workflow_id or None,
        "ParentRunId": v.parent_run_id or None,
        "RootWorkflowId": v.root_workflow_id or None,
        "RootRunId": v.root_run_id or None,
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


def execution_info(
    v: VisibilityRecord, attributes: SearchAttributeRegistry
) -> workflow_pb.WorkflowExecutionInfo:
    info = workflow_pb.WorkflowExecutionInfo(
        execution=common_pb.WorkflowExecution(workflow_id=v.workflow_id, run_id=v.run_id),
        type=common_pb.WorkflowType(name=v.workflow_type),
        start_time=ts(v.start_time_ns),
        status=v.status,  # type: ignore[arg-type]
        history_length=v.history_length,
        history_size_bytes=v.history_size_bytes,
        state_transition_count=v.state_transition_count,
        execution_time=ts(v.execution_time_ns),
        task_queue=v.task_queue,
    )
    if v.close_time_ns:
        info.close_time.CopyFrom(ts(v.close_time_ns))
        info.execution_duration.CopyFrom(dur(v.close_time_ns - v.execution_time_ns))
    if v.parent_workflow_id:
        info.parent_execution.workflow_id = v.parent_workflow_id
        info.parent_execution.run_id = v.parent_run_id
    if v.root_workflow_id:
        info.root_execution.workflow_id = v.root_workflow_id
        info.root_execution.run_id = v.root_run_id
    info.memo.SetInParent()  # present even when empty, as the reference answers
    info.search_attributes.SetInParent()
    if v.memo:
        info.memo.ParseFromString(v.memo)
    if v.search_attributes:
        shown = attributes.present(
            v.namespace_id, common_pb.SearchAttributes.FromString(v.search_attributes)
        )
        if shown.indexed_fields:
            info.search_attributes.CopyFrom(shown)
    return info


def _read_key(token: bytes) -> VisibilityKey | None:
    if not token:
        return None
    value = read_page_token(token)
    try:
        key: list[Any] = value["after"]  # type: ignore[assignment]
        close, start, run_id = key
        return (int(close), int(start), str(run_id))
    except (KeyError, TypeError, ValueError):
        raise errors.InvalidArgument("Invalid NextPageToken.") from None


async def list_workflows(
    store: Store,
    namespace_id: str,
    req: rr.ListWorkflowExecutionsRequest,
    attributes: SearchAttributeRegistry,
) -> rr.ListWorkflowExecutionsResponse:
    query = _parse(req.query, namespace_id, attributes)
    plan = translate(query, namespace_id)
    size = req.page_size if req.page_size > 0 else DEFAULT_PAGE_SIZE
    after = _read_key(req.next_page_token)
    shown: list[VisibilityRecord] = []
    more = False
    while not more:
        wanted = size - len(shown)
        limit = wanted + 1 if plan.exact else max(wanted + 1, _BATCH)
        rows = await store.query_visibility(namespace_id, plan.where, after, limit)
        for v in rows:
            if len(shown) == size:
                more = True
                break
            after = visibility_key(v)
            if plan.exact or query.matches(_record(v, attributes)):
                shown.append(v)
        if len(rows) < limit:
            break
    return rr.ListWorkflowExecutionsResponse(
        executions=[execution_info(v, attributes) for v in shown],
        next_page_token=page_token({"after": list(after)}) if more and after else b"",
    )


async def count_workflows(
    store: Store,
    namespace_id: str,
    req: rr.CountWorkflowExecutionsRequest,
    attributes: SearchAttributeRegistry,
) -> rr.CountWorkflowExecutionsResponse:
    query = _parse(req.query, namespace_id, attributes)
    plan = translate(query, namespace_id)
    group_by = query.group_by[0] if query.group_by else None
    groups: list[tuple[Any, int]]
    if plan.exact:
        column = GROUP_COLUMNS[group_by] if group_by else None
        counted = await store.count_visibility(namespace_id, plan.where, column)
        if group_by == "ExecutionStatus":
            counted = [(_status_name(value), count) for value, count in counted]
        groups = sorted(counted, key=lambda g: (g[0] is not None, _rank(group_by, g[0])))
        total = sum(count for _, count in counted)
    else:
        matched = await _matching(store, namespace_id, query, plan.where, attributes)
        total = len(matched)
        groups = [(values[0], count) for values, count in group_counts(matched, query.group_by)]
    response = rr.CountWorkflowExecutionsResponse(count=total)
    if group_by:
        for value, count in groups:
            group = response.groups.add(count=count)
            group.group_values.append(keyword_payload("" if value is None else str(value)))
    return response


def _status_name(value: int) -> str:
    return STATUS_NAMES.get(value, "Unspecified")


def _rank(group_by: str | None, value: Any) -> Any:
    if value is None:
        return 0
    if group_by == "ExecutionStatus":
        return EXECUTION_STATUSES.index(value)
    return value


async def _matching(
    store: Store,
    namespace_id: str,
    query: ListQuery,
    where: Any,
    attributes: SearchAttributeRegistry,
) -> list[dict[str, Any]]:
    """Every row passing the filter, as records (the rows the SQL condition keeps, re-checked
    here)."""
    matched: list[dict[str, Any]] = []
    after: VisibilityKey | None = None
    while True:
        rows = await store.query_visibility(namespace_id, where, after, _BATCH)
        for v in rows:
            record = _record(v, attributes)
            if query.matches(record):
                matched.append(record)
        if len(rows) < _BATCH:
            return matched
        after = visibility_key(rows[-1])
