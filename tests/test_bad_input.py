"""Bad input gets the gRPC status and message Temporal gives, and the server keeps serving."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import command_type_pb2, event_type_pb2, failed_cause_pb2
from temporalio.api.errordetails.v1 import message_pb2 as details_pb
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.api.workflowservice.v1 import service_pb2, service_pb2_grpc
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from aion.frontend.workflow_service import WorkflowService
from tests.reliability.fuzz import delimited
from tests.servers import AionProcess


def _start_request(**overrides: object) -> rr.StartWorkflowExecutionRequest:
    request = rr.StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=f"bad-input-{uuid.uuid4()}",
        workflow_type=common_pb.WorkflowType(name="Anything"),
        task_queue=taskqueue_pb.TaskQueue(name=f"tq-{uuid.uuid4()}"),
        request_id=str(uuid.uuid4()),
    )
    for name, value in overrides.items():
        if isinstance(value, str):
            setattr(request, name, value)
        else:
            getattr(request, name).CopyFrom(value)
    return request


async def test_unknown_namespace_is_not_found(client: Client) -> None:
    with pytest.raises(RPCError) as info:
        await client.workflow_service.start_workflow_execution(
            _start_request(namespace="no-such-namespace")
        )
    assert info.value.status == RPCStatusCode.NOT_FOUND
    assert "no-such-namespace" in info.value.message
    details = details_pb.NamespaceNotFoundFailure()
    assert info.value.grpc_status.details[0].Unpack(details)
    assert details.namespace == "no-such-namespace"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"workflow_id": ""}, "WorkflowId is not set on request."),
        ({"workflow_type": common_pb.WorkflowType(name="")}, "WorkflowType is not set on request."),
        ({"task_queue": taskqueue_pb.TaskQueue(name="")}, "missing task queue name"),
    ],
)
async def test_missing_start_fields_are_invalid_argument(
    client: Client, override: dict[str, object], message: str
) -> None:
    with pytest.raises(RPCError) as info:
        await client.workflow_service.start_workflow_execution(_start_request(**override))
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert info.value.message == message


async def test_second_start_gets_already_started_details(client: Client) -> None:
    request = _start_request()
    first = await client.workflow_service.start_workflow_execution(request)
    again = rr.StartWorkflowExecutionRequest()
    again.CopyFrom(request)
    again.request_id = str(uuid.uuid4())
    with pytest.raises(RPCError) as info:
        await client.workflow_service.start_workflow_execution(again)
    assert info.value.status == RPCStatusCode.ALREADY_EXISTS
    details = details_pb.WorkflowExecutionAlreadyStartedFailure()
    assert info.value.grpc_status.details[0].Unpack(details)
    assert details.run_id == first.run_id
    assert details.start_request_id == request.request_id


async def test_invalid_command_fails_the_workflow_task_and_server_keeps_serving(
    client: Client,
) -> None:
    service = client.workflow_service
    start = _start_request()
    await service.start_workflow_execution(start)
    poll = rr.PollWorkflowTaskQueueRequest(
        namespace="default", task_queue=start.task_queue, identity="raw-worker"
    )
    task = await service.poll_workflow_task_queue(poll)
    assert task.task_token

    bad = command_pb.Command(
        command_type=command_type_pb2.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=command_pb.ScheduleActivityTaskCommandAttributes(
            activity_type=common_pb.ActivityType(name="act"),
            task_queue=start.task_queue,
        ),
    )
    with pytest.raises(RPCError) as info:
        await service.respond_workflow_task_completed(
            rr.RespondWorkflowTaskCompletedRequest(
                namespace="default", task_token=task.task_token, commands=[bad]
            )
        )
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert "activityId is not set" in info.value.message

    # The failed task is recorded with Temporal's cause and a new attempt is handed out.
    retry = await service.poll_workflow_task_queue(poll)
    assert retry.task_token and retry.attempt == 2
    failed = [
        e
        for e in retry.history.events
        if e.event_type == event_type_pb2.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert len(failed) == 1
    assert (
        failed[0].workflow_task_failed_event_attributes.cause
        == failed_cause_pb2.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
    )

    complete = command_pb.Command(
        command_type=command_type_pb2.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=command_pb.CompleteWorkflowExecutionCommandAttributes(),
    )
    await service.respond_workflow_task_completed(
        rr.RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=retry.task_token, commands=[complete]
        )
    )
    described = await service.describe_workflow_execution(
        rr.DescribeWorkflowExecutionRequest(
            namespace="default",
            execution=common_pb.WorkflowExecution(workflow_id=start.workflow_id),
        )
    )
    assert described.workflow_execution_info.status == 2  # COMPLETED


async def test_stale_task_token_is_not_found(client: Client) -> None:
    service = client.workflow_service
    start = _start_request()
    await service.start_workflow_execution(start)
    task = await service.poll_workflow_task_queue(
        rr.PollWorkflowTaskQueueRequest(namespace="default", task_queue=start.task_queue)
    )
    complete = command_pb.Command(
        command_type=command_type_pb2.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=command_pb.CompleteWorkflowExecutionCommandAttributes(),
    )
    request = rr.RespondWorkflowTaskCompletedRequest(
        namespace="default", task_token=task.task_token, commands=[complete]
    )
    await service.respond_workflow_task_completed(request)
    with pytest.raises(RPCError) as info:
        await service.respond_workflow_task_completed(request)
    assert info.value.status == RPCStatusCode.NOT_FOUND


async def test_garbage_task_token_is_invalid_argument(client: Client) -> None:
    with pytest.raises(RPCError) as info:
        await client.workflow_service.respond_activity_task_completed(
            rr.RespondActivityTaskCompletedRequest(namespace="default", task_token=b"\x00garbage")
        )
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT


# ---- bodies that do not parse, RPCs Aion lacks ------------------------------------------------

WORKFLOW_SERVICE = "/temporal.api.workflowservice.v1.WorkflowService"


def _deeply_nested_failure() -> bytes:
    """A RespondActivityTaskFailed body whose failure's causes nest 150 deep (protobuf: 100)."""
    cause = failure_pb.Failure.DESCRIPTOR.fields_by_name["cause"].number
    failure = b""
    for _ in range(150):
        failure = delimited(cause, failure)
    field = rr.RespondActivityTaskFailedRequest.DESCRIPTOR.fields_by_name["failure"].number
    return delimited(field, failure)


@pytest.mark.parametrize(
    ("method", "body", "problem"),
    [
        ("GetSystemInfo", b"\xff\xff\xff", "corrupt wire format"),
        # field 1 (namespace), length 3, not UTF-8
        ("StartWorkflowExecution", b"\x0a\x03d\xff\xfe", "invalid UTF-8"),
        ("RespondActivityTaskFailed", _deeply_nested_failure(), "recursion limit"),
    ],
)
async def test_unparsable_body_is_invalid_argument(
    aion_server: AionProcess, method: str, body: bytes, problem: str
) -> None:
    async with grpc.aio.insecure_channel(aion_server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await channel.unary_unary(f"{WORKFLOW_SERVICE}/{method}")(body, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (info.value.details() or "")


async def test_unimplemented_rpc_is_unimplemented_without_a_traceback(
    aion_server: AionProcess,
) -> None:
    base = service_pb2_grpc.WorkflowServiceServicer
    lacking = [
        m.name
        for m in service_pb2.DESCRIPTOR.services_by_name["WorkflowService"].methods
        if getattr(WorkflowService, m.name) is getattr(base, m.name)
    ]
    if not lacking:
        pytest.skip("Aion implements every WorkflowService RPC")
    async with grpc.aio.insecure_channel(aion_server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await channel.unary_unary(f"{WORKFLOW_SERVICE}/{lacking[0]}")(b"", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert not any(lacking[0] in line and "ERROR" in line for line in aion_server.output)


async def test_overlong_namespace_is_invalid_argument(client: Client) -> None:
    with pytest.raises(RPCError) as info:
        await client.workflow_service.start_workflow_execution(_start_request(namespace="n" * 1001))
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert info.value.message == "Namespace length exceeds limit."


# ---- durations out of range -------------------------------------------------------------------

FOREVER = Duration(seconds=2**63 - 1)
HUNDRED_YEARS_S = 100 * 365 * 24 * 3600


@pytest.mark.parametrize(
    "field", ["workflow_execution_timeout", "workflow_run_timeout", "workflow_start_delay"]
)
async def test_huge_start_durations_are_capped_at_100_years(client: Client, field: str) -> None:
    """Temporal answers OK and caps them; they used to fail converting or persisting."""
    service = client.workflow_service
    start = _start_request(**{field: FOREVER})
    await service.start_workflow_execution(start)
    signal_start = rr.SignalWithStartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=f"bad-input-{uuid.uuid4()}",
        workflow_type=start.workflow_type,
        task_queue=start.task_queue,
        signal_name="go",
    )
    getattr(signal_start, field).CopyFrom(FOREVER)
    await service.signal_with_start_workflow_execution(signal_start)
    for workflow_id in (start.workflow_id, signal_start.workflow_id):
        history = await service.get_workflow_execution_history(
            rr.GetWorkflowExecutionHistoryRequest(
                namespace="default", execution=common_pb.WorkflowExecution(workflow_id=workflow_id)
            )
        )
        started = history.history.events[0].workflow_execution_started_event_attributes
        shown = "first_workflow_task_backoff" if field == "workflow_start_delay" else field
        assert getattr(started, shown).seconds == HUNDRED_YEARS_S
        await service.terminate_workflow_execution(
            rr.TerminateWorkflowExecutionRequest(
                namespace="default",
                workflow_execution=common_pb.WorkflowExecution(workflow_id=workflow_id),
            )
        )


@pytest.mark.parametrize(
    ("duration", "cause"),
    [
        (Duration(seconds=-1), "negative duration"),
        (Duration(seconds=1, nanos=-1), "duration has seconds and nanos with different signs"),
    ],
)
async def test_negative_start_timeout_is_invalid_argument(
    client: Client, duration: Duration, cause: str
) -> None:
    with pytest.raises(RPCError) as info:
        await client.workflow_service.start_workflow_execution(
            _start_request(workflow_run_timeout=duration)
        )
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert info.value.message == (
        f"An invalid WorkflowRunTimeoutSeconds is set on request. cause: {cause}"
    )


async def test_huge_timer_is_capped_at_100_years(client: Client) -> None:
    service = client.workflow_service
    start = _start_request()
    await service.start_workflow_execution(start)
    task = await service.poll_workflow_task_queue(
        rr.PollWorkflowTaskQueueRequest(namespace="default", task_queue=start.task_queue)
    )
    timer = command_pb.Command(
        command_type=command_type_pb2.COMMAND_TYPE_START_TIMER,
        start_timer_command_attributes=command_pb.StartTimerCommandAttributes(
            timer_id="forever", start_to_fire_timeout=Duration(seconds=10**12)
        ),
    )
    await service.respond_workflow_task_completed(
        rr.RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=task.task_token, commands=[timer]
        )
    )
    history = await service.get_workflow_execution_history(
        rr.GetWorkflowExecutionHistoryRequest(
            namespace="default",
            execution=common_pb.WorkflowExecution(workflow_id=start.workflow_id),
        )
    )
    started = [e for e in history.history.events if e.HasField("timer_started_event_attributes")]
    assert (
        started[0].timer_started_event_attributes.start_to_fire_timeout.seconds == HUNDRED_YEARS_S
    )
    await service.terminate_workflow_execution(
        rr.TerminateWorkflowExecutionRequest(
            namespace="default",
            workflow_execution=common_pb.WorkflowExecution(workflow_id=start.workflow_id),
        )
    )


async def test_huge_activity_timeouts_and_retry_delay_are_capped(client: Client) -> None:
    service = client.workflow_service
    start = _start_request()
    await service.start_workflow_execution(start)
    task = await service.poll_workflow_task_queue(
        rr.PollWorkflowTaskQueueRequest(namespace="default", task_queue=start.task_queue)
    )
    huge = Duration(seconds=10**12)
    schedule = command_pb.Command(
        command_type=command_type_pb2.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=command_pb.ScheduleActivityTaskCommandAttributes(
            activity_id="forever",
            activity_type=common_pb.ActivityType(name="act"),
            task_queue=start.task_queue,
            start_to_close_timeout=huge,
            heartbeat_timeout=huge,
            retry_policy=common_pb.RetryPolicy(initial_interval=huge, backoff_coefficient=1e308),
        ),
    )
    await service.respond_workflow_task_completed(
        rr.RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=task.task_token, commands=[schedule]
        )
    )
    activity_task = await service.poll_activity_task_queue(
        rr.PollActivityTaskQueueRequest(namespace="default", task_queue=start.task_queue)
    )
    assert activity_task.start_to_close_timeout.seconds == HUNDRED_YEARS_S
    failure = failure_pb.Failure(
        message="later",
        application_failure_info=failure_pb.ApplicationFailureInfo(next_retry_delay=huge),
    )
    await service.respond_activity_task_failed(
        rr.RespondActivityTaskFailedRequest(
            namespace="default", task_token=activity_task.task_token, failure=failure
        )
    )
    execution = common_pb.WorkflowExecution(workflow_id=start.workflow_id)
    described = await service.describe_workflow_execution(
        rr.DescribeWorkflowExecutionRequest(namespace="default", execution=execution)
    )
    (pending,) = described.pending_activities
    assert pending.attempt == 2
    await service.terminate_workflow_execution(
        rr.TerminateWorkflowExecutionRequest(namespace="default", workflow_execution=execution)
    )


async def test_error_quoting_a_huge_value_stays_readable(client: Client) -> None:
    """The message and details are cut short: clients drop trailers over 8 KiB, call and all."""
    service = client.workflow_service
    with pytest.raises(RPCError) as info:
        await service.describe_namespace(rr.DescribeNamespaceRequest(id="z" * 100_000))
    assert info.value.status == RPCStatusCode.NOT_FOUND
    assert info.value.message.startswith("Namespace zzz") and len(info.value.message) < 2100
    details = details_pb.NamespaceNotFoundFailure()
    assert info.value.grpc_status.details[0].Unpack(details)
    with pytest.raises(RPCError) as info:
        await service.describe_workflow_execution(
            rr.DescribeWorkflowExecutionRequest(
                namespace="default",
                execution=common_pb.WorkflowExecution(workflow_id="w" * 100_000),
            )
        )
    assert info.value.status == RPCStatusCode.NOT_FOUND
