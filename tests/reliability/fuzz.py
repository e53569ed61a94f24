"""Hostile request bodies for every RPC, generated from the request's descriptor with a seeded
random generator (the same bodies on every run)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from google.protobuf import duration_pb2, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from temporalio.api.command.v1 import message_pb2 as command
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import command_type_pb2 as command_type
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as workflow_service_requests
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service

SEED = 17
WORKFLOW_SERVICE = "temporal.api.workflowservice.v1.WorkflowService"
HOSTILE_PER_RPC = 30
RANDOM_BODIES_PER_RPC = 4
MAX_DEPTH = 4  # of the generated messages; deeper nesting is its own case
NESTING = 200  # deeper than protobuf's recursion limit (100)
# Namespaces the bodies name: the real one, unknown ones, and bad names.
REAL_NAMESPACE = "default"
NAMESPACES = (REAL_NAMESPACE, "no-such-namespace", "", "x" * 5000, "\x00")
# A namespace no body names, for the workflow run after the fuzzing (a DeleteNamespace or
# UpdateNamespace on "default" is fair game).
UNTOUCHED_NAMESPACE = "after-fuzz"

INT64 = (0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 10**12, -(10**12))
INT32 = (0, 1, -1, 2**31 - 1, -(2**31), 1000, 10**9)
UINT64 = (0, 1, 2**32, 2**64 - 1, 2**63)
UINT32 = (0, 1, 2**32 - 1, 2**31)
# Seconds past protobuf's valid Timestamp/Duration ranges, and nanos out of range.
SECONDS = (
    0,
    1,
    -1,
    2**63 - 1,
    -(2**63),
    315_576_000_001,
    -315_576_000_001,
    253_402_300_800,
    10**15,
)
NANOS = (0, 1, -1, 999_999_999, 10**9, 2**31 - 1, -(2**31))


@dataclass(frozen=True)
class Rpc:
    """One unary RPC: its full method path and request class."""

    service: str
    name: str
    request: type[Message]

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"


def rpcs() -> list[Rpc]:
    """Every RPC of WorkflowService and OperatorService."""
    found = []
    for module, name in (
        (workflow_service, "WorkflowService"),
        (operator_service, "OperatorService"),
    ):
        service = module.DESCRIPTOR.services_by_name[name]
        for method in service.methods:
            found.append(_rpc(method))
    return found


def _rpc(method: MethodDescriptor) -> Rpc:
    request = message_factory.GetMessageClass(method.input_type)
    return Rpc(method.containing_service.full_name, method.name, request)


@dataclass(frozen=True)
class Case:
    """A body to send and what it is, for the failure report."""

    kind: str
    body: bytes


def cases(rpc: Rpc, rng: random.Random) -> Iterator[Case]:
    """The bodies sent to `rpc`: random bytes, corrupt wire format, invalid UTF-8, nesting deeper
    than the limit, and hostile messages (an empty one first)."""
    for _ in range(RANDOM_BODIES_PER_RPC):
        yield Case("random bytes", rng.randbytes(rng.choice((1, 7, 64, 2048))))
    yield Case("truncated field", _tag(1, 2) + _varint(100) + b"abc")
    yield Case("bad wire type", _tag(1, 7))
    utf8 = _bad_utf8(rpc.request.DESCRIPTOR, rng)
    if utf8 is not None:
        yield Case("invalid UTF-8", utf8)
    deep = _deep(rpc.request.DESCRIPTOR)
    if deep is not None:
        yield Case("deep nesting", deep)
    yield Case("deep unknown groups", _tag(999, 3) * NESTING + _tag(999, 4) * NESTING)
    yield Case("empty message", b"")
    for i in range(HOSTILE_PER_RPC):
        # Half wholly hostile, half plausible requests on the real namespace with a few
        # hostile fields (these get past the first checks).
        generator = _Generator(rng, hostility=1.0 if i % 2 else 0.1)
        message = rpc.request()
        generator.fill(message, 0)
        yield Case("hostile message" if i % 2 else "plausible message", message.SerializeToString())


# Ids the plausible requests name, shared by all RPCs (the test starts these workflows first).
WORKFLOW_IDS = ("fuzz-workflow-1", "fuzz-workflow-2")
TASK_QUEUE = "fuzz-queue"
# Fields a plausible request always sets.
ESSENTIAL_FIELDS = frozenset(
    {
        "namespace",
        "workflow_id",
        "workflow_type",
        "task_queue",
        "execution",
        "workflow_execution",
        "name",
        "signal_name",
        "query",
        "query_type",
        "identity",
        "schedule_id",
        "schedule",
    }
)
PLAUSIBLE_NAMES = {
    "cron_schedule": ("", "* * * * *"),
    "query_type": ("__stack_trace",),
    "signal_name": ("fuzz-signal",),
    "namespace": (REAL_NAMESPACE,),
    "workflow_id": WORKFLOW_IDS,
    "task_queue": (TASK_QUEUE,),
    "name": (TASK_QUEUE, "FuzzWorkflow"),
    "identity": ("fuzzer",),
}


class _Generator:
    """Fills messages: each leaf field gets a hostile value with probability `hostility`, else
    a plausible one."""

    def __init__(self, rng: random.Random, hostility: float) -> None:
        self.rng = rng
        self.hostility = hostility

    def hostile(self) -> bool:
        return self.rng.random() < self.hostility

    def fill(self, message: Message, depth: int) -> None:
        """Set a random subset of `message`'s fields (proto3: a missing field is the default)."""
        descriptor = message.DESCRIPTOR
        if descriptor.full_name in ("google.protobuf.Duration", "google.protobuf.Timestamp"):
            if self.hostile():
                message.seconds = self.rng.choice(SECONDS)  # type: ignore[attr-defined]
                message.nanos = self.rng.choice(NANOS)  # type: ignore[attr-defined]
            else:
                message.seconds = self.rng.choice((1, 10, 3600))  # type: ignore[attr-defined]
                if descriptor.full_name == "google.protobuf.Timestamp":
                    message.seconds += 1_800_000_000  # type: ignore[attr-defined]
            return
        chance = self.rng.choice((0.2, 0.5, 0.9)) if self.hostile() else 0.4
        for field in descriptor.fields:
            if self.rng.random() > chance and field.name not in ESSENTIAL_FIELDS:
                continue
            if field.containing_oneof is not None and message.WhichOneof(
                field.containing_oneof.name
            ):
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                self._map(message, field, depth)
            elif field.is_repeated:
                for _ in range(self.rng.choice((0, 1, 3))):
                    self._append(message, field, depth)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < MAX_DEPTH:
                    self.fill(getattr(message, field.name), depth + 1)
                    getattr(message, field.name).SetInParent()
            else:
                setattr(message, field.name, self.scalar(field))

    def _append(self, message: Message, field: FieldDescriptor, depth: int) -> None:
        values = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth < MAX_DEPTH:
                self.fill(values.add(), depth + 1)
        else:
            values.append(self.scalar(field))

    def _map(self, message: Message, field: FieldDescriptor, depth: int) -> None:
        entries = getattr(message, field.name)
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        for _ in range(self.rng.choice((1, 2, 5))):
            key = self.scalar(key_field)
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < MAX_DEPTH:
                    self.fill(entries[key], depth + 1)
            else:
                entries[key] = self.scalar(value_field)

    def scalar(self, field: FieldDescriptor) -> object:
        t = field.type
        rng = self.rng
        if t == FieldDescriptor.TYPE_STRING:
            return self.string(field.name) if self.hostile() else self.plausible(field.name)
        if t == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if not self.hostile():
            if t == FieldDescriptor.TYPE_BYTES:
                return b"fuzz"
            if t == FieldDescriptor.TYPE_ENUM:  # often unspecified, as in real requests
                return rng.choice([0, 0, *(v.number for v in field.enum_type.values)])
            if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
                return rng.choice((0.0, 0.5, 1.0))
            return rng.choice((0, 1, 5))
        if t == FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(70_000 if rng.random() < 0.02 else rng.choice((0, 3, 100)))
        if t == FieldDescriptor.TYPE_ENUM:
            known = [v.number for v in field.enum_type.values]
            return rng.choice((*known, -1, 99, 2**31 - 1))
        if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return rng.choice((-1.0, 1e308, float("inf"), float("-inf"), float("nan")))
        if t in (
            FieldDescriptor.TYPE_INT64,
            FieldDescriptor.TYPE_SINT64,
            FieldDescriptor.TYPE_SFIXED64,
        ):
            return rng.choice(INT64)
        if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            return rng.choice(UINT64)
        if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            return rng.choice(UINT32)
        return rng.choice(INT32)

    def plausible(self, name: str) -> str:
        if name in PLAUSIBLE_NAMES:
            return self.rng.choice(PLAUSIBLE_NAMES[name])
        if name.endswith("run_id") or name.endswith("request_id"):
            return str(uuid.UUID(int=self.rng.getrandbits(128)))
        return f"fuzz-{name}"

    def string(self, name: str) -> str:
        rng = self.rng
        if name == "namespace":
            return rng.choice(NAMESPACES)
        if rng.random() < 0.02:
            return "y" * 100_000
        return rng.choice(
            (
                "",
                "fuzz",
                "x" * 1001,
                "\x00\x01\x7f",
                "\u202e\ufeff\U0001f4a5",
                "not-a-uuid",
                "WorkflowId = 'x' AND (",
                "ExecutionStatus = 'Running' ORDER BY StartTime",
                "1h",
                "-5s",
                "* * * * *",
                "%s%n{0}",
            )
        )


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def delimited(number: int, payload: bytes) -> bytes:
    return _tag(number, 2) + _varint(len(payload)) + payload


def _bad_utf8(descriptor: Descriptor, rng: random.Random, depth: int = 0) -> bytes | None:
    """A body whose first string field (searched through nested messages) holds invalid UTF-8."""
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            return delimited(field.number, b"ok\xff\xfe" + rng.randbytes(4))
    if depth < 3:
        for field in descriptor.fields:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                inner = _bad_utf8(field.message_type, rng, depth + 1)
                if inner is not None:
                    return delimited(field.number, inner)
    return None


def _deep(descriptor: Descriptor) -> bytes | None:
    """A body nesting a self-referencing message (Failure.cause, Struct…) `NESTING` deep, if the
    request holds one."""
    path = _path_to_cycle(descriptor, [], set())
    if path is None:
        return None
    lead, loop = path
    body = b""
    for _ in range(NESTING):
        for field in reversed(loop):
            body = delimited(field.number, body)
    for field in reversed(lead):
        body = delimited(field.number, body)
    return body


def _path_to_cycle(
    descriptor: Descriptor, lead: list[FieldDescriptor], seen: set[str]
) -> tuple[list[FieldDescriptor], list[FieldDescriptor]] | None:
    """Fields leading from the request to a message type, and fields from that type back to
    itself."""
    if descriptor.full_name in seen:
        return None
    seen.add(descriptor.full_name)
    loop = _loop(descriptor, descriptor, [], set())
    if loop is not None:
        return lead, loop
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            found = _path_to_cycle(field.message_type, [*lead, field], seen)
            if found is not None:
                return found
    return None


def _loop(
    start: Descriptor, at: Descriptor, path: list[FieldDescriptor], seen: set[str]
) -> list[FieldDescriptor] | None:
    for field in at.fields:
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.message_type.full_name == start.full_name:
            return [*path, field]
        if field.message_type.full_name not in seen:
            seen.add(field.message_type.full_name)
            found = _loop(start, field.message_type, [*path, field], seen)
            if found is not None:
                return found
    return None


# RPCs that may wait for something to happen until the caller's deadline: long polls, and calls
# waiting on a worker (queries, updates) or on new history events.
WAITING_RPCS = frozenset(
    {
        "PollWorkflowTaskQueue",
        "PollActivityTaskQueue",
        "PollNexusTaskQueue",
        "PollWorkflowExecutionUpdate",
        "GetWorkflowExecutionHistory",
        "QueryWorkflow",
        "UpdateWorkflowExecution",
        "ExecuteMultiOperation",
        "PollActivityExecution",
        "PollNexusOperationExecution",
        "PollWorkflowExecutionTimeSkipping",
    }
)
DEADLINE_S = 4.0  # a hostile call answered past 2 s once, under the whole suite's load
HANG_S = DEADLINE_S + 10  # no answer by then: the call hangs


@dataclass(frozen=True)
class Outcome:
    rpc: Rpc
    case: Case
    index: int
    code: grpc.StatusCode
    details: str


async def send_all(address: str, seed: int = SEED, concurrency: int = 16) -> list[Outcome]:
    """Send every case to every RPC, and `TOKEN_CASES` hostile task completions with real task
    tokens, `concurrency` calls at a time; each call's outcome. The namespaces are deleted last,
    so that the other RPCs find "default"."""
    outcomes: list[Outcome] = []
    limit = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:

        async def call(rpc: Rpc, index: int, case: Case) -> None:
            method = channel.unary_unary(rpc.path)  # bytes in and out
            async with limit:
                try:
                    await asyncio.wait_for(method(case.body, timeout=DEADLINE_S), HANG_S)
                    code, details = grpc.StatusCode.OK, ""
                except grpc.aio.AioRpcError as e:
                    code, details = e.code(), e.details() or ""
                except TimeoutError:
                    code, details = grpc.StatusCode.UNKNOWN, "no answer long past the deadline"
            outcomes.append(Outcome(rpc, case, index, code, details))

        tasks = _Tasks(channel, limit)
        for workflow_id in WORKFLOW_IDS:  # for the plausible requests to find
            await tasks.start(workflow_id, TASK_QUEUE)
        every = rpcs()
        deleting = [rpc for rpc in every if rpc.name == "DeleteNamespace"]
        by_name = {rpc.name: rpc for rpc in every}

        async def token_case(i: int) -> None:
            rpc, body = await tasks.hostile_completion(i, random.Random(f"{seed}:token:{i}"))
            await call(by_name[rpc], i, Case("with a task token", body))

        await asyncio.gather(
            *(token_case(i) for i in range(TOKEN_CASES)),
            *(
                call(rpc, i, case)
                for rpc in every
                if rpc not in deleting
                for i, case in enumerate(cases(rpc, random.Random(f"{seed}:{rpc.path}")))
            ),
        )
        await asyncio.gather(
            *(
                call(rpc, i, case)
                for rpc in deleting
                for i, case in enumerate(cases(rpc, random.Random(f"{seed}:{rpc.path}")))
            )
        )
    return outcomes


TOKEN_CASES = 60
ACTIVITY_RPCS = (
    "RespondActivityTaskCompleted",
    "RespondActivityTaskFailed",
    "RespondActivityTaskCanceled",
    "RecordActivityTaskHeartbeat",
)


class _Tasks:
    """Workflows and activities to hand out real task tokens, for completions with hostile
    contents (commands, failures, results) to get past the token check."""

    def __init__(self, channel: grpc.aio.Channel, limit: asyncio.Semaphore) -> None:
        self.channel = channel
        self.limit = limit

    async def _call(self, method: str, request: Message) -> bytes:
        async with self.limit:
            answer: bytes = await self.channel.unary_unary(f"/{WORKFLOW_SERVICE}/{method}")(
                request.SerializeToString(), timeout=10
            )
        return answer

    async def start(self, workflow_id: str, queue: str) -> None:
        request = workflow_service_requests.StartWorkflowExecutionRequest(
            namespace=REAL_NAMESPACE,
            workflow_id=workflow_id,
            workflow_type=common.WorkflowType(name="FuzzWorkflow"),
            task_queue=taskqueue.TaskQueue(name=queue),
        )
        await self._call("StartWorkflowExecution", request)

    async def _poll(self, method: str, queue: str) -> bytes:
        rr = workflow_service_requests
        request_type = getattr(rr, f"{method}Request")
        answer = await self._call(
            method,
            request_type(namespace=REAL_NAMESPACE, task_queue=taskqueue.TaskQueue(name=queue)),
        )
        token: bytes = getattr(rr, f"{method}Response").FromString(answer).task_token
        assert token, f"{method} on {queue} got no task"
        return token

    async def hostile_completion(self, i: int, rng: random.Random) -> tuple[str, bytes]:
        """Case `i`: a workflow task completed with hostile commands, failed with a hostile
        failure, or an activity task answered with hostile contents; the RPC and its body."""
        rr = workflow_service_requests
        queue = f"fuzz-token-queue-{i}"
        await self.start(f"fuzz-token-{i}", queue)
        token = await self._poll("PollWorkflowTaskQueue", queue)
        generator = _Generator(rng, hostility=1.0 if i % 2 else 0.1)
        if i % 3 == 0:
            completed = rr.RespondWorkflowTaskCompletedRequest()
            generator.fill(completed, 1)
            del completed.commands[:]
            completed.commands.extend(_commands(generator))
            return "RespondWorkflowTaskCompleted", _with_token(completed, token)
        if i % 3 == 1:
            failed = rr.RespondWorkflowTaskFailedRequest()
            generator.fill(failed, 1)
            return "RespondWorkflowTaskFailed", _with_token(failed, token)
        schedule = command.Command(
            command_type=command_type.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
            schedule_activity_task_command_attributes=command.ScheduleActivityTaskCommandAttributes(
                activity_id="fuzz-activity",
                activity_type=common.ActivityType(name="FuzzActivity"),
                start_to_close_timeout=duration_pb2.Duration(seconds=60),
            ),
        )
        await self._call(
            "RespondWorkflowTaskCompleted",
            rr.RespondWorkflowTaskCompletedRequest(
                namespace=REAL_NAMESPACE, task_token=token, commands=[schedule]
            ),
        )
        token = await self._poll("PollActivityTaskQueue", queue)
        method = ACTIVITY_RPCS[i // 3 % len(ACTIVITY_RPCS)]
        answer = getattr(rr, f"{method}Request")()
        generator.fill(answer, 1)
        return method, _with_token(answer, token)


def _with_token(request: Message, token: bytes) -> bytes:
    request.namespace = REAL_NAMESPACE  # type: ignore[attr-defined]
    request.task_token = token  # type: ignore[attr-defined]
    return request.SerializeToString()


def _commands(generator: _Generator) -> list[command.Command]:
    """One to three commands of random types, their attributes filled by `generator`."""
    rng = generator.rng
    attributes = command.Command.DESCRIPTOR.oneofs_by_name["attributes"].fields
    made = []
    for _ in range(rng.choice((1, 2, 3))):
        field = rng.choice(attributes)
        made_command = command.Command()
        generator.fill(getattr(made_command, field.name), 1)
        getattr(made_command, field.name).SetInParent()
        name = "COMMAND_TYPE_" + field.name.removesuffix("_command_attributes").upper()
        known = command_type.CommandType.keys()
        made_command.command_type = command_type.CommandType.Value(
            name if name in known and rng.random() < 0.9 else rng.choice(known)
        )
        made.append(made_command)
    return made
