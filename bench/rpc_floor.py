"""The server CPU one gRPC call costs, with nothing behind it: the floor under every workflow.

    .venv/bin/python bench/rpc_floor.py [--calls 20000] [--concurrency 100]

Measures, one after the other, the server process's CPU per unary call of
`WorkflowService.GetSystemInfo` (an empty answer) on

- `bare grpc.aio`: a `grpc.aio` server on uvloop with only that method, as Aion builds its own
  (same options), so the figure is grpc.aio's own cost per call;
- `aion`: `aion server start-dev` (in memory), the same call through Aion's frontend.

Each server runs in its own process on a free port; the client (the official SDK's) keeps
`--concurrency` calls in flight. Prints calls/s and server CPU µs per call; a workflow's floor is
that figure times the calls it makes (bench/README.md, "Issue 15: the gRPC floor").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client

ROOT = Path(__file__).resolve().parent.parent

BARE_SERVER = """
import asyncio, sys
import grpc, uvloop
from temporalio.api.workflowservice.v1 import service_pb2_grpc as svc, request_response_pb2 as rr

class Service(svc.WorkflowServiceServicer):
    async def GetSystemInfo(self, request, context):
        return rr.GetSystemInfoResponse(server_version="bare")

async def main():
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", 128 * 1024 * 1024),
        ("grpc.max_send_message_length", 128 * 1024 * 1024),
    ])
    svc.add_WorkflowServiceServicer_to_server(Service(), server)
    server.add_insecure_port(sys.argv[1])
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()

uvloop.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(address: str, pid: int, calls: int, concurrency: int) -> tuple[float, float]:
    """(calls per second, server CPU µs per call)."""
    client = await Client.connect(address)
    service = client.workflow_service
    per_lane = calls // concurrency

    async def lane() -> None:
        for _ in range(per_lane):
            await service.get_system_info(rr.GetSystemInfoRequest())

    await asyncio.gather(*(lane() for _ in range(concurrency)))  # warm-up
    cpu_before, began = cpu_seconds(pid), time.monotonic()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    elapsed, cpu = time.monotonic() - began, cpu_seconds(pid) - cpu_before
    done = per_lane * concurrency
    return done / elapsed, cpu / done * 1e6


def start(kind: str, port: int) -> subprocess.Popen[bytes]:
    if kind == "bare grpc.aio":
        argv = [sys.executable, "-c", BARE_SERVER, f"127.0.0.1:{port}"]
    else:
        argv = [sys.executable, "-m", "aion", "server", "start-dev", "--port", str(port)]
        argv += ["--headless"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for line in proc.stdout:  # both print a line once they serve
        if b"ready" in line or b"listening on" in line:
            break
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    print(f"1-min load average before: {os.getloadavg()[0]:.2f}")
    print("| server | calls/s | server CPU µs/call |\n|---|---:|---:|")
    for kind in ("bare grpc.aio", "aion"):
        port = free_port()
        proc = start(kind, port)
        try:
            rate, cpu = asyncio.run(
                measure(f"127.0.0.1:{port}", proc.pid, args.calls, args.concurrency)
            )
        finally:
            proc.terminate()
            proc.wait(20)
        print(f"| {kind} | {rate:.0f} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
