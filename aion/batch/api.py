"""The batch operation RPCs of WorkflowService: start, stop, describe and list. Start and stop
act on the process owning the job's shard (the frontend forwards the call there otherwise);
describe and list read the store."""

from __future__ import annotations

from temporalio.api.batch.v1 import message_pb2 as batch_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import common_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.batch.runtime import COMPLETED, BatchRuntime
from aion.batch.validation import OPERATION_TYPES, adjusted_query, operation_of, validate_start
from aion.common.timeutil import ts
from aion.common.tokens import page
from aion.namespaces import Namespace
from aion.visibility import listing

DEFAULT_PAGE_SIZE = 1000  # Temporal's visibility max page size
WORKFLOW = common_pb2.ExecutionType.EXECUTION_TYPE_WORKFLOW
MICROSECOND = 1000


async def start_batch_operation(
    runtime: BatchRuntime, ns: Namespace, request: rr.StartBatchOperationRequest
) -> rr.StartBatchOperationResponse:
    query = adjusted_query(request)
    if query and not request.executions and not request.target_executions:
        try:
            await listing.count_workflows(
                runtime.store,
                ns.id,
                rr.CountWorkflowExecutionsRequest(namespace=ns.name, query=query),
                runtime.engine.namespaces.search_attributes,
            )
        except errors.InvalidArgument as e:
            detail = e.message.removeprefix("invalid query: ").removeprefix("malformed SQL query: ")
            raise errors.InvalidArgument(f"invalid visibility query: {detail}") from None
    await runtime.start_job(ns.id, request)
    return rr.StartBatchOperationResponse()


async def stop_batch_operation(
    runtime: BatchRuntime, ns: Namespace, request: rr.StopBatchOperationRequest
) -> rr.StopBatchOperationResponse:
    await runtime.stop_job(ns.id, request.job_id)
    return rr.StopBatchOperationResponse()


async def describe_batch_operation(
    runtime: BatchRuntime, ns: Namespace, request: rr.DescribeBatchOperationRequest
) -> rr.DescribeBatchOperationResponse:
    record = await runtime.read(ns.id, request.job_id)
    batch = rr.StartBatchOperationRequest.FromString(record.request)
    operation = operation_of(batch)
    response = rr.DescribeBatchOperationResponse(
        operation_type=OPERATION_TYPES.get(operation, 0),  # type: ignore[arg-type]
        job_id=record.job_id,
        state=record.state,  # type: ignore[arg-type]
        start_time=ts(record.start_time_ns),
        total_operation_count=record.total,
        complete_operation_count=record.succeeded,
        failure_operation_count=record.failed,
        identity=getattr(getattr(batch, operation), "identity", "") if operation else "",
        reason=batch.reason,
        query=batch.visibility_query,
    )
    if record.state == COMPLETED:  # the counts of what was done, as Temporal reports them
        response.total_operation_count = record.succeeded + record.failed
    if record.close_time_ns:
        response.close_time.CopyFrom(ts(record.close_time_ns))
    for execution in batch.executions:
        response.executions.append(
            common_pb.Execution(
                type=WORKFLOW, business_id=execution.workflow_id, run_id=execution.run_id
            )
        )
    response.executions.extend(batch.target_executions)
    return response


async def list_batch_operations(
    runtime: BatchRuntime, ns: Namespace, request: rr.ListBatchOperationsRequest
) -> rr.ListBatchOperationsResponse:
    records = await runtime.store.list_batch_operations(namespace_id=ns.id)
    size = request.page_size if 0 < request.page_size <= DEFAULT_PAGE_SIZE else DEFAULT_PAGE_SIZE
    shown, following = page(records, request.next_page_token, size)
    response = rr.ListBatchOperationsResponse(next_page_token=following)
    for record in shown:
        operation = operation_of(rr.StartBatchOperationRequest.FromString(record.request))
        info = batch_pb.BatchOperationInfo(
            job_id=record.job_id,
            state=record.state,  # type: ignore[arg-type]
            # visibility keeps microseconds
            start_time=ts(record.start_time_ns // MICROSECOND * MICROSECOND),
            operation_type=OPERATION_TYPES.get(operation, 0),  # type: ignore[arg-type]
        )
        if record.close_time_ns:
            info.close_time.CopyFrom(ts(record.close_time_ns // MICROSECOND * MICROSECOND))
        response.operation_info.append(info)
    return response


__all__ = [
    "describe_batch_operation",
    "list_batch_operations",
    "start_batch_operation",
    "stop_batch_operation",
    "validate_start",
]
