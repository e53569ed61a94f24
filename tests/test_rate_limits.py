"""Requests per second per namespace and per process at the frontend (docs/security.md, "Limits
per namespace"), through the official SDK.

A namespace past its rate answers RESOURCE_EXHAUSTED with the reference's message and failure
details (checked against `temporal server start-dev` with the same limit) while another
namespace is served; calls of a higher priority still pass; the SDK's worker, whose calls are
retried, finishes its workflows under a tight limit.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import (
    EventType,
    ResourceExhaustedCause,
    ResourceExhaustedScope,
    TaskQueueType,
)
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    ListWorkflowExecutionsRequest,
    PollWorkflowTaskQueueRequest,
    StartWorkflowExecutionRequest,
    service_pb2,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from aion.config import ConfigError, parse_dynamic_config
from aion.frontend import quotas
from tests.auth_support import aion_cli, created_key
from tests.conformance.reference import running_reference
from tests.helpers import fresh_storage, unique

pytestmark = pytest.mark.timeout(120)

FLOODED = "tenant-a"
SERVED = "tenant-b"
WORKED = "tenant-c"  # a worker's namespace: 5 calls a second, no burst
FROZEN = "frozen"
POLLED = "tenant-d"  # one poll of a kind at a time
CLOSED = "tenant-e"  # no calls at all
HOLD_S = 0.4  # how long a refusal for a namespace's rate is held
CALLS = 20  # far past a burst of 1


def dynamic_config(key: str, value: object) -> list[str]:
    return ["--dynamic-config-value", f"{key}={json.dumps(value)}"]


# tenant-a: one call a second, no burst; tenant-c five; every other namespace the reference's
# defaults.
AION_FLAGS = [
    *dynamic_config(
        "frontend.namespaceRPS",
        [
            {"value": 1, "constraints": {"namespace": FLOODED}},
            {"value": 5, "constraints": {"namespace": WORKED}},
            {"value": 0, "constraints": {"namespace": CLOSED}},
            {"value": 2400},
        ],
    ),
    *dynamic_config("frontend.namespaceBurstRatio", 1),
    *dynamic_config("aion.namespaceRefusalHoldMillis", int(HOLD_S * 1000)),
    *dynamic_config(
        "frontend.namespaceRPS.visibility", [{"value": 1, "constraints": {"namespace": FLOODED}}]
    ),
    *dynamic_config(
        "frontend.namespaceCount", [{"value": 1, "constraints": {"namespace": POLLED}}]
    ),
    # tenant-b's queue FROZEN dispatches nothing.
    *dynamic_config(
        "admin.matchingNamespaceTaskqueueToPartitionDispatchRate",
        [{"value": 0, "constraints": {"namespace": SERVED, "taskQueueName": FROZEN}}],
    ),
]


@dataclass
class Outcome:
    ok: int
    refused: list[RPCError]


def start_request(namespace: str) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace=namespace,
        workflow_id=unique("flood"),
        workflow_type=WorkflowType(name="Nobody"),
        task_queue=TaskQueue(name=unique("nobody")),
        request_id=str(uuid.uuid4()),
    )


async def flood_starts(client: Client, namespace: str, calls: int = CALLS) -> Outcome:
    """`calls` starts at once, not retried: how many passed, and the errors of the others."""

    async def start() -> RPCError | None:
        try:
            await client.workflow_service.start_workflow_execution(
                start_request(namespace), retry=False
            )
        except RPCError as e:
            return e
        return None

    results = await asyncio.gather(*(start() for _ in range(calls)))
    refused = [r for r in results if r is not None]
    return Outcome(calls - len(refused), refused)


def exhaustion(error: RPCError) -> tuple[RPCStatusCode, str, int, int]:
    """Status, message, and the failure's cause and scope."""
    assert error.grpc_status.details, error
    failure = ResourceExhaustedFailure()
    assert error.grpc_status.details[0].Unpack(failure)
    return error.status, error.message, failure.cause, failure.scope


NAMESPACE_LIMIT = (
    RPCStatusCode.RESOURCE_EXHAUSTED,
    "namespace rate limit exceeded",
    ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT,
    ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
)
CONCURRENT_LIMIT = (
    RPCStatusCode.RESOURCE_EXHAUSTED,
    "namespace concurrent poller limit exceeded",
    ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT,
    ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
)
OVERLOADED = (
    RPCStatusCode.RESOURCE_EXHAUSTED,
    "too many requests in flight on this frontend; retry later",
    ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_SYSTEM_OVERLOADED,
    ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_SYSTEM,
)
SERVICE_LIMIT = (
    RPCStatusCode.RESOURCE_EXHAUSTED,
    "service rate limit exceeded",
    ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT,
    ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_SYSTEM,
)


@pytest.fixture(scope="module")
async def tenants(backend: str) -> AsyncIterator[Client]:
    """A client of an Aion server where tenant-a may make one call a second."""
    async with fresh_storage(backend) as storage:
        server = storage.server(
            namespaces=[FLOODED, SERVED, WORKED, POLLED, CLOSED], extra_args=AION_FLAGS
        )
        await asyncio.to_thread(server.start)
        try:
            yield await Client.connect(server.address)
        finally:
            await asyncio.to_thread(server.stop)


async def test_flooded_namespace_is_refused_and_the_other_served(tenants: Client) -> None:
    flooded = await flood_starts(tenants, FLOODED)
    assert flooded.refused, "a burst of 1 let all the calls through"
    assert {exhaustion(e) for e in flooded.refused} == {NAMESPACE_LIMIT}
    served = await flood_starts(tenants, SERVED)
    assert served.ok == CALLS, [e.message for e in served.refused]


async def test_a_refusal_for_the_namespace_rate_is_held(tenants: Client) -> None:
    """Answered after the hold, so that a client retrying at once makes a few calls a second
    instead of thousands; a call whose deadline comes sooner still gets RESOURCE_EXHAUSTED."""
    began = time.monotonic()
    with pytest.raises(RPCError) as refused:
        await tenants.workflow_service.start_workflow_execution(start_request(CLOSED), retry=False)
    assert time.monotonic() - began >= HOLD_S
    assert exhaustion(refused.value) == NAMESPACE_LIMIT
    with pytest.raises(RPCError) as hurried:
        await tenants.workflow_service.start_workflow_execution(
            start_request(CLOSED), retry=False, timeout=timedelta(seconds=HOLD_S * 0.75)
        )
    assert exhaustion(hurried.value) == NAMESPACE_LIMIT


async def test_higher_priority_calls_pass_a_namespace_at_its_limit(tenants: Client) -> None:
    flooded = await flood_starts(tenants, FLOODED)
    assert flooded.refused
    # DescribeNamespace comes before starts: the starts spent none of its budget.
    response = await tenants.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=FLOODED), retry=False
    )
    assert response.namespace_info.name == FLOODED


async def test_visibility_calls_have_their_own_rate(tenants: Client) -> None:
    async def list_once() -> RPCError | None:
        try:
            await tenants.workflow_service.list_workflow_executions(
                ListWorkflowExecutionsRequest(namespace=FLOODED), retry=False
            )
        except RPCError as e:
            return e
        return None

    refused = [e for e in await asyncio.gather(*(list_once() for _ in range(CALLS))) if e]
    assert refused
    assert {exhaustion(e) for e in refused} == {NAMESPACE_LIMIT}
    served = await tenants.workflow_service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace=SERVED), retry=False
    )
    assert served is not None


async def concurrent_polls(client: Client, namespace: str) -> list[RPCError | None]:
    """Two workflow task polls of `namespace` at once, long polls both (nothing comes): the
    error of each (None: answered, empty)."""
    poll = PollWorkflowTaskQueueRequest(
        namespace=namespace, task_queue=TaskQueue(name=unique("nobody")), identity="poller"
    )

    async def one() -> RPCError | None:
        try:
            await client.workflow_service.poll_workflow_task_queue(
                poll, retry=False, timeout=timedelta(seconds=5)
            )
        except RPCError as e:
            return e
        return None

    return list(await asyncio.gather(one(), one()))


async def test_long_running_calls_are_bounded_per_namespace(tenants: Client) -> None:
    first, second = await concurrent_polls(tenants, POLLED)
    refused = [e for e in (first, second) if e is not None]
    assert len(refused) == 1
    assert exhaustion(refused[0]) == CONCURRENT_LIMIT
    # Other namespaces poll as they like.
    await tenants.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace=SERVED, task_queue=TaskQueue(name=unique("q"))),
        retry=False,
        timeout=timedelta(seconds=2),
    )


async def flood_with(backend: str, key: str, value: int, calls: int) -> Outcome:
    """`flood_starts` of `default` on a server of its own with dynamic config `key` set."""
    async with fresh_storage(backend) as storage:
        server = storage.server(extra_args=dynamic_config(key, value))
        await asyncio.to_thread(server.start)
        try:
            return await flood_starts(await Client.connect(server.address), "default", calls)
        finally:
            await asyncio.to_thread(server.stop)


async def test_calls_in_flight_past_the_bound_are_refused(backend: str) -> None:
    """`aion.maxInFlightRequests`: a burst past it is refused at once, not queued."""
    flooded = await flood_with(backend, "aion.maxInFlightRequests", 1, 5 * CALLS)
    assert flooded.refused and flooded.ok
    assert {exhaustion(e) for e in flooded.refused} == {OVERLOADED}


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn
class Shouter:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            shout, text, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class ShoutThrice:
    @workflow.run
    async def run(self) -> list[str]:
        return await asyncio.gather(
            *(
                workflow.execute_activity(
                    shout, str(n), start_to_close_timeout=timedelta(seconds=30)
                )
                for n in range(3)
            )
        )


def shout_worker(client: Client, queue: str, **options: Any) -> Worker:
    return Worker(
        client,
        task_queue=queue,
        workflows=[Shouter, ShoutThrice],
        activities=[shout],
        workflow_runner=UnsandboxedWorkflowRunner(),
        **options,
    )


async def in_namespace(tenants: Client, namespace: str) -> Client:
    return await Client.connect(tenants.service_client.config.target_host, namespace=namespace)


async def test_worker_finishes_its_workflows_under_the_limit(tenants: Client) -> None:
    """Its polls, completions and the client's starts are refused now and then; the SDK retries
    them and every workflow completes."""
    client = await in_namespace(tenants, WORKED)
    queue = unique("limited")
    async with shout_worker(client, queue):
        handles = [
            await client.start_workflow(
                Shouter.run, f"hi {n}", id=unique("shout"), task_queue=queue
            )
            for n in range(3)
        ]
        results = await asyncio.gather(*(h.result() for h in handles))
    assert results == ["HI 0", "HI 1", "HI 2"]


async def rate_limiting_active(client: Client, queue: str, task_type: int) -> bool:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=task_type,  # type: ignore[arg-type]
            report_stats=True,
        )
    )
    return response.stats.rate_limiting_active


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.1)


async def test_a_queue_with_a_dispatch_rate_of_zero_holds_its_tasks(tenants: Client) -> None:
    """The system's dispatch rate of one queue (set per namespace and queue) holds its tasks
    back; the namespace's other queues are served."""
    client = await in_namespace(tenants, SERVED)
    queue = unique("free")
    async with shout_worker(client, FROZEN), shout_worker(client, queue):
        frozen = await client.start_workflow(
            Shouter.run, "held", id=unique("frozen"), task_queue=FROZEN
        )
        free = await client.start_workflow(Shouter.run, "free", id=unique("free"), task_queue=queue)
        assert await free.result() == "FREE"
        await eventually(
            lambda: rate_limiting_active(client, FROZEN, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
            "the frozen queue's poller held back",
        )
        events = [e.event_type async for e in frozen.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED not in events
        await frozen.terminate()


async def test_workers_dispatch_rate_is_followed(tenants: Client) -> None:
    """A worker's `max_task_queue_activities_per_second` spaces its activities."""
    client = await in_namespace(tenants, SERVED)
    queue = unique("spaced")
    async with shout_worker(client, queue, max_task_queue_activities_per_second=2):
        result = await client.execute_workflow(
            ShoutThrice.run, id=unique("thrice"), task_queue=queue
        )
    assert result == ["0", "1", "2"]
    # Three activities scheduled at once, one dispatched a second: the others were held back.
    assert await rate_limiting_active(client, queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)


async def test_process_rate_limit_answers_with_scope_system(backend: str) -> None:
    flooded = await flood_with(backend, "frontend.rps", 1, CALLS)
    assert flooded.refused
    assert {exhaustion(e) for e in flooded.refused} == {SERVICE_LIMIT}


async def test_writes_refused_by_a_limit_are_not_audited(backend: str, tmp_path: Path) -> None:
    """With auth and the audit log on, a flood past the namespace's rate leaves one audit event
    per start that passed, none for the refused ones."""
    async with fresh_storage(backend, str(tmp_path / "aion.db")) as storage:
        database = (
            ["--dsn", storage.dsn] if storage.dsn else ["--db-filename", str(storage.db_filename)]
        )
        created = await asyncio.to_thread(
            aion_cli, "apikey", "create", "-n", "temporal-system", "--role", "admin", *database
        )
        key = created_key(created)
        flags = ["--auth", *dynamic_config("frontend.namespaceRPS", 1)]
        server = storage.server(
            extra_args=[*flags, *dynamic_config("frontend.namespaceBurstRatio", 1)]
        )
        await asyncio.to_thread(server.start)
        try:
            client = await Client.connect(server.address, api_key=key, tls=False)
            flooded = await flood_starts(client, "default")
            listed = await asyncio.to_thread(
                aion_cli, "audit", "list", "--namespace", "default", *database
            )
        finally:
            await asyncio.to_thread(server.stop)
    assert flooded.refused and flooded.ok
    assert {exhaustion(e) for e in flooded.refused} == {NAMESPACE_LIMIT}
    assert listed.returncode == 0, listed.stderr
    starts = [
        event["result"]
        for event in map(json.loads, listed.stdout.splitlines())
        if event["method"].endswith("/StartWorkflowExecution")
    ]
    assert starts == ["OK"] * flooded.ok


async def test_the_reference_bounds_polls_alike(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the reference runs once, on the SQLite pass")
    async with running_reference(extra_args=dynamic_config("frontend.namespaceCount", 1)) as ref:
        polls = await concurrent_polls(await Client.connect(ref.address), "default")
    # (The reference's own worker of the namespace may hold the one poll allowed.)
    refused = [e for e in polls if e is not None]
    assert refused
    assert {exhaustion(e) for e in refused} == {CONCURRENT_LIMIT}


@pytest.mark.parametrize(
    ("limits", "calls", "expected"),
    [
        ({"frontend.namespaceRPS": 1, "frontend.namespaceBurstRatio": 1}, CALLS, NAMESPACE_LIMIT),
        # The reference's own system workflows need some of the process's rate to start.
        ({"frontend.rps": 10}, 10 * CALLS, SERVICE_LIMIT),
    ],
)
async def test_the_reference_answers_alike(
    backend: str, limits: dict[str, int], calls: int, expected: tuple[object, ...]
) -> None:
    if backend != "sqlite":
        pytest.skip("the reference runs once, on the SQLite pass")
    flags = [arg for key, value in limits.items() for arg in dynamic_config(key, value)]
    async with running_reference(extra_args=flags) as reference:
        client = await Client.connect(reference.address)
        flooded = await flood_starts(client, "default", calls)
    assert flooded.refused
    assert {exhaustion(e) for e in flooded.refused} == {expected}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"fast"', "must be a number"),
        ('[{"constraints": {"namespace": "a"}}]', 'must be an object with a "value"'),
        ('[{"value": 5, "constraints": {"taskQueueName": "q"}}]', "constraints honoured"),
        ('[{"value": 5, "constraints": {"namespace": 3}}]', "must be a string"),
        ('[{"value": 1.5}]', "must be an integer"),
    ],
)
def test_bad_namespace_values_are_refused(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_dynamic_config([f"frontend.namespaceRPS={value}"])


def test_namespace_values_are_accepted() -> None:
    value = '[{"value": 5, "constraints": {"namespace": "a"}}, {"value": 100}]'
    assert parse_dynamic_config([f"frontend.namespaceRPS={value}"]) == {
        "frontend.namespaceRPS": [
            {"value": 5, "constraints": {"namespace": "a"}},
            {"value": 100},
        ]
    }


def test_every_workflow_service_call_has_a_class_and_a_priority() -> None:
    """A new RPC without a place in the tables fails here (it would not be limited)."""
    methods = {m.name for m in service_pb2.DESCRIPTOR.services_by_name["WorkflowService"].methods}
    classified = set(quotas.EXECUTION_PRIORITY) | set(quotas.VISIBILITY_PRIORITY)
    assert methods == classified
    assert not set(quotas.EXECUTION_PRIORITY) & set(quotas.VISIBILITY_PRIORITY)
