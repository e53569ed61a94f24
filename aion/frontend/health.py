"""Health checks: the standard gRPC health service (`grpc.health.v1`, what `temporal operator
cluster health` asks) and `GET /health` for load balancers that cannot speak gRPC. Both say
NOT_SERVING until the server serves its shards, and again once it starts stopping.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

# The services a health check may name ("" is the server as a whole), as the reference lists them.
SERVICES = (
    "",
    "temporal.api.workflowservice.v1.WorkflowService",
    "temporal.api.operatorservice.v1.OperatorService",
)


class Health:
    """Whether this server process serves calls, told to gRPC health checks and `/health`."""

    def __init__(self) -> None:
        self._servicer = health.aio.HealthServicer()
        self.serving = False

    def add_to(self, server: grpc.aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)

    async def set_serving(self, serving: bool) -> None:
        self.serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in SERVICES:
            await self._servicer.set(service, status)
