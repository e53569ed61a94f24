"""OpenTelemetry spans: one server span per RPC, persistence spans under it, and one span per
workflow run that lasts as long as the run (`run_closed`). Imported only when tracing is on."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import event_type_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service_pb

from aion import __version__, errors
from aion.tracing.config import Settings
from aion.tracing.context import request_workflow

log = logging.getLogger(__name__)

R = TypeVar("R")
ExecutionKey = tuple[str, str, str]  # namespace id, workflow id, run id
ReadHistory = Callable[[ExecutionKey, int, int], Awaitable[list[history_pb.HistoryEvent]]]

# The header in which the SDKs' tracing interceptors carry the trace context (a JSON payload of
# the W3C text-map carrier), and where each request type holds its header.
TRACER_HEADER = "_tracer-data"
WORKFLOW_SERVICE = workflow_service_pb.DESCRIPTOR.services_by_name["WorkflowService"]

E = event_type_pb2.EventType
CLOSE_EVENTS = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "Completed",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "Failed",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "TimedOut",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "Canceled",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "Terminated",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "ContinuedAsNew",
}
FAILED_CLOSES = {"Failed", "TimedOut"}

# Trace and span ids a span must take (the workflow-lifetime span), else random ones.
_FORCED_IDS: ContextVar[tuple[int, int] | None] = ContextVar("aion_forced_ids", default=None)


class _Ids(RandomIdGenerator):
    """Random ids, except those `_FORCED_IDS` sets while a workflow-lifetime span starts."""

    def generate_span_id(self) -> int:
        forced = _FORCED_IDS.get()
        return forced[1] if forced else super().generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _FORCED_IDS.get()
        return forced[0] if forced else super().generate_trace_id()


def run_ids(namespace_id: str, workflow_id: str, run_id: str) -> tuple[int, int]:
    """The trace id (used when the run has no parent trace) and span id of a run's lifetime
    span, the same in every process and after any restart; never zero."""
    digest = hashlib.sha256(f"{namespace_id}\0{workflow_id}\0{run_id}".encode()).digest()
    span_id = int.from_bytes(digest[:8], "big") or 1
    trace_id = int.from_bytes(digest[8:24], "big") or 1
    return trace_id, span_id


def _exporter(settings: Settings) -> SpanExporter:
    if settings.exporter == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.endpoint)


def carrier_context(payload: common_pb.Payload) -> Context | None:
    """The trace context in a `_tracer-data` header payload (JSON), None when it has none."""
    try:
        carrier = json.loads(payload.data)
    except ValueError:
        return None
    if not isinstance(carrier, dict) or "traceparent" not in carrier:
        return None
    return propagate.extract({str(k): str(v) for k, v in carrier.items()})


def _header(request: Any) -> common_pb.Header | None:
    """The header of a start, signal, signal-with-start, update or query request."""
    if isinstance(request, rr.UpdateWorkflowExecutionRequest):
        return request.request.input.header
    if isinstance(request, rr.QueryWorkflowRequest):
        return request.query.header
    if isinstance(request, rr.ExecuteMultiOperationRequest):
        for operation in request.operations:
            if operation.HasField("start_workflow"):
                return operation.start_workflow.header
        return None
    header = getattr(request, "header", None)
    return header if isinstance(header, common_pb.Header) else None


class Tracing:
    """The tracer provider of the process, and the spans Aion makes."""

    def __init__(self, settings: Settings) -> None:
        attributes = {"service.version": __version__}
        if settings.service_name is not None:
            attributes["service.name"] = settings.service_name
        self.provider = TracerProvider(resource=Resource.create(attributes), id_generator=_Ids())
        self.processor: SpanProcessor = (
            SimpleSpanProcessor(_exporter(settings))
            if settings.exporter == "console"
            else BatchSpanProcessor(_exporter(settings))
        )
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("aion", __version__)
        self._pending: set[asyncio.Task[None]] = set()
        log.info("tracing on: %s exporter", settings.exporter)

    def shutdown(self) -> None:
        self.provider.shutdown()

    # ---- RPCs ----------------------------------------------------------------------------
    def _parent(self, request: Any, context: Any) -> Context | None:
        """The caller's trace: `traceparent` in the gRPC metadata, else the SDK interceptor's
        `_tracer-data` header in the request."""
        metadata = context.invocation_metadata() if context is not None else None
        if metadata:
            carrier = {k: v for k, v in metadata if isinstance(v, str)}
            if "traceparent" in carrier:
                return propagate.extract(carrier)
        header = _header(request)
        if header is not None and TRACER_HEADER in header.fields:
            return carrier_context(header.fields[TRACER_HEADER])
        return None

    async def rpc(self, operation: str, request: Any, context: Any, call: Awaitable[R]) -> R:
        """Await `call` in a server span named as the gRPC method; error status on failure."""
        ref = request_workflow(request)
        service = (
            WORKFLOW_SERVICE.full_name
            if operation in WORKFLOW_SERVICE.methods_by_name
            else "temporal.api.operatorservice.v1.OperatorService"
        )
        attributes = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": operation,
            "temporalNamespace": ref.namespace,
        }
        if ref.workflow_id:
            attributes["temporalWorkflowID"] = ref.workflow_id
        if ref.run_id:
            attributes["temporalRunID"] = ref.run_id
        with self.tracer.start_as_current_span(
            f"{service}/{operation}",
            context=self._parent(request, context),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await call
            except BaseException as e:
                details: str | None
                if isinstance(e, errors.ServiceError):  # the wrapper aborts the call with it
                    code, details = e.code, e.message
                else:
                    code = context.code() if context is not None else None
                    details = context.details() if context is not None else None
                if code is not None:
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                span.set_status(Status(StatusCode.ERROR, details or f"{type(e).__name__}: {e}"))
                raise
            run_id = getattr(response, "run_id", None)
            if run_id and isinstance(run_id, str) and not ref.run_id:
                span.set_attribute("temporalRunID", run_id)
            span.set_attribute("rpc.grpc.status_code", 0)
            return response

    def inject(self, metadata: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """gRPC metadata with the current span as the `traceparent` (replacing the caller's)."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return [(k, v) for k, v in metadata if k not in carrier] + list(carrier.items())

    # ---- persistence -----------------------------------------------------------------------
    @contextlib.contextmanager
    def store_span(self, method: str, workflow_id: str = "") -> Iterator[None]:
        """A span around a store call, only under a span being recorded (an RPC's): background
        work (leases, task loading) makes no traces of its own."""
        if not trace.get_current_span().is_recording():
            yield
            return
        with self.tracer.start_as_current_span(
            f"persistence/{method}", kind=SpanKind.CLIENT, record_exception=False
        ) as span:
            span.set_attribute("db.operation", method)
            if workflow_id:
                span.set_attribute("temporalWorkflowID", workflow_id)
            yield

    # ---- the workflow-lifetime span --------------------------------------------------------
    def run_closed(
        self,
        key: ExecutionKey,
        last_event_id: int,
        read: ReadHistory,
        namespace_by_id: Callable[[str], Any],
    ) -> None:
        """A run's close was committed: emit its lifetime span, built from its history (read
        after this returns; the caller's commit is not held up)."""
        task = asyncio.get_running_loop().create_task(
            self._emit_run(key, last_event_id, read, namespace_by_id),
            context=contextvars.Context(),  # not part of the RPC's trace that closed the run
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _emit_run(
        self,
        key: ExecutionKey,
        last_event_id: int,
        read: ReadHistory,
        namespace_by_id: Callable[[str], Any],
    ) -> None:
        try:
            namespace = str(namespace_by_id(key[0]).name)
            started = (await read(key, 1, 1))[0]
            close = (await read(key, last_event_id, 1))[0] if last_event_id > 1 else started
            if close.event_type not in CLOSE_EVENTS:  # not the last event: look for it
                events = await read(key, 1, 1_000_000)
                close = next(e for e in reversed(events) if e.event_type in CLOSE_EVENTS)
        except Exception:
            log.warning("workflow %s run %s: no lifetime span", key[1], key[2], exc_info=True)
            return
        self.emit_run_span(key, namespace, started, close)

    def emit_run_span(
        self,
        key: ExecutionKey,
        namespace: str,
        started: history_pb.HistoryEvent,
        close: history_pb.HistoryEvent,
    ) -> None:
        """The run's lifetime span: from its started event to its close event, child of the
        trace context its start carried, with the span id `run_ids` derives."""
        namespace_id, workflow_id, run_id = key
        attrs = started.workflow_execution_started_event_attributes
        parent: Context | None = None
        if TRACER_HEADER in attrs.header.fields:
            parent = carrier_context(attrs.header.fields[TRACER_HEADER])
        parent_span = trace.get_current_span(parent) if parent is not None else None
        trace_id, span_id = run_ids(namespace_id, workflow_id, run_id)
        if parent_span is not None and parent_span.get_span_context().is_valid:
            trace_id = parent_span.get_span_context().trace_id
        else:
            parent = Context()  # a root span in a trace of its own, not the current one's
        outcome = CLOSE_EVENTS[close.event_type]
        token = _FORCED_IDS.set((trace_id, span_id))
        try:
            span = self.tracer.start_span(
                f"Workflow:{attrs.workflow_type.name}",
                context=parent,
                kind=SpanKind.INTERNAL,
                start_time=started.event_time.ToNanoseconds(),
                attributes={
                    "temporalNamespace": namespace,
                    "temporalWorkflowID": workflow_id,
                    "temporalRunID": run_id,
                    "temporalWorkflowType": attrs.workflow_type.name,
                    "temporalTaskQueue": attrs.task_queue.name,
                    "temporalWorkflowOutcome": outcome,
                },
            )
        finally:
            _FORCED_IDS.reset(token)
        if outcome in FAILED_CLOSES:
            span.set_status(Status(StatusCode.ERROR, f"workflow {outcome}"))
        span.end(end_time=close.event_time.ToNanoseconds())
