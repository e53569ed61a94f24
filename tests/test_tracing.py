"""Tracing (issue 14, acceptance 3): an Aion server exports its spans to an in-process OTLP
receiver; the client is the SDK with its OpenTelemetry `TracingInterceptor`, whose own spans stay
in this process (an in-memory exporter), so the two sides' trace and span ids can be compared."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.service import RPCError
from temporalio.worker import Worker

from aion.tracing import TracingConfig, settings
from aion.tracing.otel import run_ids
from tests.helpers import Storage
from tests.otlp import Receiver, Span, attributes
from tests.servers import AionProcess

WORKFLOW_SERVICE = "temporal.api.workflowservice.v1.WorkflowService"


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn
class Waiting:
    """Runs an activity, then waits for the signal `finish`."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self, text: str) -> str:
        result = await workflow.execute_activity(
            shout, text, start_to_close_timeout=timedelta(seconds=10)
        )
        await workflow.wait_condition(lambda: self.done)
        return result

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


class SdkSide:
    """The SDK's tracing interceptor with its spans kept in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.interceptor = TracingInterceptor(provider.get_tracer("test"))

    def start_span(self, workflow_id: str) -> ReadableSpan:
        """The client span of the workflow's start."""
        spans = [
            s
            for s in self.exporter.get_finished_spans()
            if s.name == "StartWorkflow:Waiting"
            and (s.attributes or {}).get("temporalWorkflowID") == workflow_id
        ]
        assert len(spans) == 1, [s.name for s in self.exporter.get_finished_spans()]
        return spans[0]


def _server_span(operation: str, workflow_id: str) -> object:
    def match(span: Span) -> bool:
        return (
            span.name == f"{WORKFLOW_SERVICE}/{operation}"
            and attributes(span).get("temporalWorkflowID") == workflow_id
        )

    return match


def _child_of(span: Span, parent: ReadableSpan) -> bool:
    context = parent.get_span_context()
    assert context is not None
    return (
        int.from_bytes(span.trace_id, "big") == context.trace_id
        and int.from_bytes(span.parent_span_id, "big") == context.span_id
    )


async def _lifetime_span(
    receiver: Receiver, client: Client, handle: WorkflowHandle[Waiting, str], start: ReadableSpan
) -> None:
    """The run's lifetime span: the derived span id, child of the SDK's start span, from the
    started event's time to the close event's."""
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    run_id = handle.result_run_id or ""
    _, span_id = run_ids(described.namespace_info.id, handle.id, run_id)
    span = await receiver.wait_for(lambda s: s.name == "Workflow:Waiting" and _rid(s) == run_id)
    assert int.from_bytes(span.span_id, "big") == span_id
    assert _child_of(span, start)
    events = (await handle.fetch_history()).events
    assert events[0].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    assert span.start_time_unix_nano == events[0].event_time.ToNanoseconds()
    assert span.end_time_unix_nano == events[-1].event_time.ToNanoseconds()
    attrs = attributes(span)
    assert attrs["temporalWorkflowID"] == handle.id
    assert attrs["temporalNamespace"] == "default"
    assert attrs["temporalWorkflowOutcome"] == "Completed"
    assert len([s for s in receiver.spans if s.span_id == span.span_id]) == 1


def _rid(span: Span) -> str:
    return str(attributes(span).get("temporalRunID", ""))


async def test_server_spans_join_the_sdk_trace_and_lifetime_spans_survive_restart(
    storage: Storage, receiver: Receiver
) -> None:
    sdk = SdkSide()
    first, second = f"traced-{uuid.uuid4()}", f"traced-{uuid.uuid4()}"
    server = storage.server(env=receiver.env)
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address, interceptors=[sdk.interceptor])
        async with Worker(client, task_queue="traced", workflows=[Waiting], activities=[shout]):
            handle = await client.start_workflow(Waiting.run, "a", id=first, task_queue="traced")
            await handle.signal(Waiting.finish)
            assert await handle.result() == "A"
            later = await client.start_workflow(Waiting.run, "b", id=second, task_queue="traced")

        # The server spans are in the SDK's trace, children of its client spans.
        start = sdk.start_span(first)
        span = await receiver.wait_for(_server_span("StartWorkflowExecution", first))
        assert _child_of(span, start)
        assert span.kind == Span.SPAN_KIND_SERVER
        assert _rid(span) == handle.result_run_id
        assert attributes(span)["temporalNamespace"] == "default"
        signal = await receiver.wait_for(_server_span("SignalWorkflowExecution", first))
        assert any(_child_of(signal, s) for s in sdk.exporter.get_finished_spans())
        # The store calls of the start are spans under its server span.
        commit = await receiver.wait_for(
            lambda s: s.name == "persistence/commit" and s.parent_span_id == span.span_id
        )
        assert commit.trace_id == span.trace_id

        await _lifetime_span(receiver, client, handle, start)

        # An RPC that fails has an error status.
        with pytest.raises(RPCError):
            await client.get_workflow_handle(f"missing-{uuid.uuid4()}").describe()
        failed = await receiver.wait_for(
            lambda s: (
                s.name.endswith("/DescribeWorkflowExecution")
                and str(attributes(s).get("temporalWorkflowID", "")).startswith("missing-")
            )
        )
        assert failed.status.code == failed.status.STATUS_CODE_ERROR
    finally:
        await asyncio.to_thread(server.stop)

    # The second run closes on a new server process: its lifetime span is the same span (the
    # id derived from the run), in the trace of the start made before the restart.
    assert not [
        s for s in receiver.spans if _rid(s) == later.result_run_id and s.name == "Workflow:Waiting"
    ]
    server = storage.server(env=receiver.env)
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address, interceptors=[sdk.interceptor])
        handle = client.get_workflow_handle_for(Waiting.run, second, run_id=later.result_run_id)
        async with Worker(client, task_queue="traced", workflows=[Waiting], activities=[shout]):
            await handle.signal(Waiting.finish)
            assert await handle.result() == "B"
        await _lifetime_span(receiver, client, handle, sdk.start_span(second))
    finally:
        await asyncio.to_thread(server.stop)


async def test_traceparent_in_grpc_metadata_is_the_parent(receiver: Receiver) -> None:
    server = AionProcess(env=receiver.env)
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default"),
            metadata={"traceparent": f"00-{trace_id}-{parent_id}-01"},
        )
        span = await receiver.wait_for(lambda s: s.trace_id.hex() == trace_id)
        assert span.name == f"{WORKFLOW_SERVICE}/DescribeNamespace"
        assert span.parent_span_id.hex() == parent_id
    finally:
        await asyncio.to_thread(server.stop)


def test_tracing_is_off_unless_asked() -> None:
    assert settings(TracingConfig(), {}) is None
    assert settings(TracingConfig(), {"OTEL_TRACES_EXPORTER": "none"}) is None
    on = settings(TracingConfig(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert on is not None and on.exporter == "otlp" and on.endpoint is None
    from_file = settings(TracingConfig(endpoint="http://collector:4317"), {})
    assert from_file is not None and from_file.endpoint == "http://collector:4317"
    assert from_file.service_name == "aion"
    named = settings(TracingConfig(exporter="otlp"), {"OTEL_SERVICE_NAME": "x"})
    assert named is not None and named.service_name is None
    assert settings(TracingConfig(exporter="otlp"), {"OTEL_SDK_DISABLED": "true"}) is None


def test_lifetime_span_ids_are_derived_from_the_run() -> None:
    ids = run_ids("ns", "wf", "run")
    assert ids == run_ids("ns", "wf", "run")
    assert ids != run_ids("ns", "wf", "run2")
    assert all(i > 0 for i in ids) and ids[1] < 2**64 and ids[0] < 2**128
