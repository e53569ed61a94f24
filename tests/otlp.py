"""An in-process OTLP trace receiver (gRPC) for the tests: Aion servers under test export their
spans to it through the standard `OTEL_*` variables (`env`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as collector_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as collector_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.servers import free_port

Span = trace_pb2.Span


class Receiver(collector_grpc.TraceServiceServicer):
    """Keeps every span exported to it; `wait_for` waits for the ones a test expects."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list[Span] = []
        self._changed = asyncio.Condition()
        self._server = grpc.aio.server()
        collector_grpc.add_TraceServiceServicer_to_server(self, self._server)

    @property
    def env(self) -> dict[str, str]:
        """What turns tracing on in an Aion server, exporting here without delay."""
        return {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_SERVICE_NAME": "aion-under-test",
        }

    async def start(self) -> None:
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop(None)

    async def Export(  # noqa: N802 (the gRPC method's name)
        self, request: collector_pb.ExportTraceServiceRequest, context: Any
    ) -> collector_pb.ExportTraceServiceResponse:
        async with self._changed:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
            self._changed.notify_all()
        return collector_pb.ExportTraceServiceResponse()

    async def wait_for(self, predicate: Callable[[Span], bool], timeout: float = 20.0) -> Span:
        """The first span received that satisfies `predicate`, waiting for it up to `timeout`."""

        def found() -> Span | None:
            return next((s for s in self.spans if predicate(s)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        span = found()
        assert span is not None
        return span


def attributes(span: Span) -> dict[str, Any]:
    """A span's attributes as plain values."""
    values: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, kind) if kind else None
    return values
