"""Two tenants: tenant B's start latency, alone and while tenant A floods its own namespace far
past its rate limit (issue 19, acceptance 6: B's p99 within 2x of its unloaded value).

    .venv/bin/python bench/tenants.py [--starts 500] [--pace 50] [--flood-processes 2]
        [--flood-lanes 20] [--limit 50] [--refusal-hold-ms MS] [--db-filename PATH]

Starts `aion server start-dev` with namespaces tenant-a (at most `--limit` calls a second, no
burst, and the visibility calls at a fifth of it; its refusals held `--refusal-hold-ms`, by
default the server's default) and tenant-b (the defaults). Then, twice — alone,
and with tenant A's flood running — tenant B starts `--starts` workflows one after another at
`--pace` starts a second and records each start's latency (the call, not retried). The flood is
`--flood-processes` processes (the official SDK's client each) of `--flood-lanes` calls in flight,
the lanes in turn making starts, workflow task polls, describes of the namespace and lists, none
retried, each lane its next call as soon as the last is answered (an answered poll waits a
second for a task that never comes; a refused one returns at once). Prints a markdown table: B's p50, p99 and max, B's
refused calls, and A's calls a second, answered and refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from rpc_floor import cpu_seconds, free_port
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.service import RPCError

ROOT = Path(__file__).resolve().parent.parent
FLOODER = "tenant-a"
VICTIM = "tenant-b"
# An answered poll waits this long (less a second) for a task that never comes.
POLL_TIMEOUT = timedelta(seconds=2)


def start_request(namespace: str) -> rr.StartWorkflowExecutionRequest:
    return rr.StartWorkflowExecutionRequest(
        namespace=namespace,
        workflow_id=f"tenants-{uuid.uuid4()}",
        workflow_type=WorkflowType(name="Idle"),
        task_queue=TaskQueue(name=f"{namespace}-idle"),  # nobody polls it: runs stay open
        request_id=str(uuid.uuid4()),
    )


def server_args(
    port: int, limit: int, db_filename: str | None, refusal_hold_ms: int | None = None
) -> list[str]:
    def value(key: str, rps: float) -> list[str]:
        constrained = [{"value": rps, "constraints": {"namespace": FLOODER}}]
        return ["--dynamic-config-value", f"{key}={json.dumps(constrained)}"]

    argv = [sys.executable, "-m", "aion", "server", "start-dev", "--headless"]
    argv += ["--port", str(port), "--namespace", FLOODER, "--namespace", VICTIM]
    argv += value("frontend.namespaceRPS", limit)
    argv += value("frontend.namespaceBurstRatio", 1)
    argv += value("frontend.namespaceRPS.visibility", max(1, limit // 5))
    if refusal_hold_ms is not None:
        argv += ["--dynamic-config-value", f"aion.namespaceRefusalHoldMillis={refusal_hold_ms}"]
    argv += ["--log-level", "error"]
    if db_filename:
        argv += ["--db-filename", db_filename]
    return argv


def start_server(argv: list[str], address: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if address.encode() in line:
            return proc
    raise RuntimeError("the server did not start")


async def measure_victim(address: str, starts: int, pace: float) -> tuple[list[float], int]:
    """B's start latencies (ms) and how many of its starts were refused."""
    client = await Client.connect(address, namespace=VICTIM)
    service = client.workflow_service
    for _ in range(10):  # warm-up
        await service.start_workflow_execution(start_request(VICTIM), retry=False)
    latencies: list[float] = []
    refused = 0
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    for _ in range(starts):
        next_at += 1 / pace
        began = time.perf_counter()
        try:
            await service.start_workflow_execution(start_request(VICTIM), retry=False)
        except RPCError:
            refused += 1
        latencies.append((time.perf_counter() - began) * 1000)
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    return latencies, refused


async def flood(address: str, lanes: int, seconds: float) -> dict[str, int]:
    """Tenant A's flood for `seconds`: counts of answered and refused calls by status."""
    client = await Client.connect(address, namespace=FLOODER)
    service = client.workflow_service
    outcomes: Counter[str] = Counter()
    poll = rr.PollWorkflowTaskQueueRequest(
        namespace=FLOODER, task_queue=TaskQueue(name=f"{FLOODER}-flood"), identity="flood"
    )
    calls = (
        lambda: service.start_workflow_execution(start_request(FLOODER), retry=False),
        lambda: service.poll_workflow_task_queue(poll, retry=False, timeout=POLL_TIMEOUT),
        lambda: service.describe_namespace(
            rr.DescribeNamespaceRequest(namespace=FLOODER), retry=False
        ),
        lambda: service.list_workflow_executions(
            rr.ListWorkflowExecutionsRequest(namespace=FLOODER, page_size=10), retry=False
        ),
    )
    until = asyncio.get_running_loop().time() + seconds

    async def lane(call: Callable[[], Awaitable[object]]) -> None:
        while asyncio.get_running_loop().time() < until:
            try:
                await call()
                outcomes["ok"] += 1
            except RPCError as e:
                outcomes[e.status.name if e.status else "error"] += 1

    await asyncio.gather(*(lane(calls[i % len(calls)]) for i in range(lanes)))
    return dict(outcomes)


def start_flood(
    address: str, processes: int, lanes: int, seconds: float
) -> list[subprocess.Popen[str]]:
    """The flooding processes, at the lowest CPU priority: on one small machine they share the
    cores with the server and tenant B, where in a deployment they run on machines of their
    own; niced, they take what the server and B leave instead of competing with them."""
    argv = [sys.executable, __file__, "--flood-child", address, str(lanes), str(seconds)]
    return [
        subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.nice(19)
        )
        for _ in range(processes)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=500)
    parser.add_argument("--pace", type=float, default=50.0, help="B's starts a second")
    parser.add_argument("--flood-processes", type=int, default=2)
    parser.add_argument("--flood-lanes", type=int, default=20)
    parser.add_argument("--limit", type=int, default=50, help="tenant A's calls a second")
    parser.add_argument("--refusal-hold-ms", type=int, help="(default: the server's)")
    parser.add_argument("--db-filename", help="SQLite file (default: in memory)")
    parser.add_argument("--flood-child", nargs=3, metavar=("ADDRESS", "LANES", "SECONDS"))
    args = parser.parse_args()
    if args.flood_child:
        address, lanes, seconds = args.flood_child
        print(json.dumps(asyncio.run(flood(address, int(lanes), float(seconds)))), flush=True)
        os._exit(0)  # grpc's threads can abort the interpreter's shutdown after a flood

    port = free_port()
    address = f"127.0.0.1:{port}"
    server = start_server(
        server_args(port, args.limit, args.db_filename, args.refusal_hold_ms), address
    )
    try:
        print(f"1-min load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
        alone, alone_refused = asyncio.run(measure_victim(address, args.starts, args.pace))
        seconds = args.starts / args.pace + 15  # B's run, its warm-up and the flood's start
        flooders = start_flood(address, args.flood_processes, args.flood_lanes, seconds)
        time.sleep(3)  # the flood under way
        cpu_before, began = cpu_seconds(server.pid), time.monotonic()
        flooded, flooded_refused = asyncio.run(measure_victim(address, args.starts, args.pace))
        server_cpu = (cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - began)
        counts: Counter[str] = Counter()
        for proc in flooders:
            out, _ = proc.communicate(timeout=seconds + 60)
            counts.update(json.loads(out))
        load = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(20)
    a_total = sum(counts.values())
    print(f"1-min load average after: {load:.2f}; server CPU while flooded: {server_cpu:.0%}")
    print(
        f"tenant A: limit {args.limit}/s; {a_total / seconds:.0f} calls/s over {seconds:.0f} s, "
        + ", ".join(f"{k} {v / seconds:.0f}/s" for k, v in sorted(counts.items()))
    )
    print("| tenant B starts | p50 ms | p99 ms | max ms | mean ms | refused |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values, refused in (
        ("alone", alone, alone_refused),
        ("tenant A flooding", flooded, flooded_refused),
    ):
        print(
            f"| {name} | {percentile(values, 0.5):.2f} | {percentile(values, 0.99):.2f} "
            f"| {max(values):.2f} | {statistics.fmean(values):.2f} | {refused} |"
        )
    print(f"p99 flooded / alone: {percentile(flooded, 0.99) / percentile(alone, 0.99):.2f}")


if __name__ == "__main__":
    main()
