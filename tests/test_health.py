"""Health checks: `temporal operator cluster health` and the gRPC health service answer SERVING
while the server serves; `GET /health` on the metrics port answers 200, and 503 once the server
has begun to stop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aion.server import AionServer, ServerConfig
from tests.helpers import Storage
from tests.servers import free_port

TEMPORAL = Path(sys.executable).parent / "temporal"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def http_status(port: int) -> int:
    url = f"http://127.0.0.1:{port}/health"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


async def grpc_health(address: str, service: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service)
        )
        return response.status


async def test_cli_health_and_http_health(storage: Storage) -> None:
    metrics_port = free_port()
    server = storage.server(extra_args=["--metrics-port", str(metrics_port)])
    await asyncio.to_thread(server.start)
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [str(TEMPORAL), "operator", "cluster", "health", "--address", server.address],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "SERVING"
        for service in ("", "temporal.api.workflowservice.v1.WorkflowService"):
            assert await grpc_health(server.address, service) == SERVING
        assert await http_status(metrics_port) == 200
    finally:
        await asyncio.to_thread(server.stop)


async def test_an_unknown_service_is_not_found() -> None:
    server = AionServer(ServerConfig(port=free_port()))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            call = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="nope")
            )
            try:
                await call
            except grpc.aio.AioRpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND
            else:
                raise AssertionError("an unknown service answered")
    finally:
        await server.stop()


async def test_not_serving_while_stopping() -> None:
    metrics_port = free_port()
    server = AionServer(ServerConfig(port=free_port(), metrics_port=metrics_port))
    await server.start()
    assert await http_status(metrics_port) == 200
    stopping = asyncio.create_task(server.stop())
    while server.health.serving:  # stop() first tells the health checks, then drains gRPC
        await asyncio.sleep(0)
    assert await http_status(metrics_port) == 503
    await stopping
