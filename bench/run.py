"""Benchmark a server that speaks Temporal's gRPC API, using the official Python SDK.

Runs each workload as N workflows with at most C in flight, against a bench worker in a separate
process, and reports throughput, end-to-end latency percentiles and (with --server-pid) the
server's CPU-seconds per workflow.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import time
import uuid
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client, WorkflowUpdateFailedError
from workloads import (
    UPDATES_PER_WORKFLOW,
    NoopWorkflow,
    OneActivityWorkflow,
    SignalQueryWorkflow,
    TenActivitiesWorkflow,
    TimerWorkflow,
    UpdateWorkflow,
)

HERE = Path(__file__).resolve().parent
WORKER_READY_TIMEOUT = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

RunOne = Callable[[Client, str, str], Awaitable[None]]


async def run_noop(client: Client, workflow_id: str, task_queue: str) -> None:
    await client.execute_workflow(NoopWorkflow.run, id=workflow_id, task_queue=task_queue)


async def run_one_activity(client: Client, workflow_id: str, task_queue: str) -> None:
    await client.execute_workflow(OneActivityWorkflow.run, id=workflow_id, task_queue=task_queue)


async def run_ten_activities(client: Client, workflow_id: str, task_queue: str) -> None:
    await client.execute_workflow(TenActivitiesWorkflow.run, id=workflow_id, task_queue=task_queue)


async def run_signal_query(client: Client, workflow_id: str, task_queue: str) -> None:
    handle = await client.start_workflow(
        SignalQueryWorkflow.run, id=workflow_id, task_queue=task_queue
    )
    if await handle.query(SignalQueryWorkflow.released):
        raise RuntimeError("query reported released before the signal was sent")
    await handle.signal(SignalQueryWorkflow.release)
    if not await handle.result():
        raise RuntimeError("workflow completed without seeing the signal")


async def run_timer(client: Client, workflow_id: str, task_queue: str) -> None:
    await client.execute_workflow(TimerWorkflow.run, id=workflow_id, task_queue=task_queue)


async def run_update(client: Client, workflow_id: str, task_queue: str) -> None:
    handle = await client.start_workflow(UpdateWorkflow.run, id=workflow_id, task_queue=task_queue)
    expected = 0
    for i in range(1, UPDATES_PER_WORKFLOW + 1):
        if i == 3:  # one rejected update per workflow, between accepted ones
            try:
                await handle.execute_update(UpdateWorkflow.add, -1)
            except WorkflowUpdateFailedError:
                pass
            else:
                raise RuntimeError("update with a negative amount was not rejected")
        expected += i
        total = await handle.execute_update(UpdateWorkflow.add, i)
        if total != expected:
            raise RuntimeError(f"update {i} returned {total}, expected {expected}")
    if await handle.execute_update(UpdateWorkflow.finish) != expected:
        raise RuntimeError("finish update returned the wrong total")
    if await handle.result() != expected:
        raise RuntimeError("workflow completed with the wrong total")


WORKLOADS: dict[str, RunOne] = {
    "noop": run_noop,
    "one-activity": run_one_activity,
    "ten-activities": run_ten_activities,
    "signal-query": run_signal_query,
    "timer": run_timer,
    "update": run_update,
}


@dataclass
class Batch:
    """Raw outcome of running a batch of workflows."""

    latencies: list[float]
    errors: list[str]
    wall_s: float
    timed_out: bool


@dataclass
class WorkloadResult:
    """One workload's figures; latencies in milliseconds, CPU in seconds."""

    workload: str
    workflows: int
    completed: int
    errors: int
    timed_out: bool
    wall_s: float
    workflows_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    server_cpu_s: float | None
    server_cpu_s_per_wf: float | None
    first_error: str | None


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of `pid` and its live descendants, plus their reaped children's, in seconds."""
    stats: dict[int, tuple[int, int]] = {}  # pid -> (ppid, clock ticks)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        # After the command name: state ppid ... utime(14) stime cutime cstime (1-based fields).
        stats[int(entry)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    if pid not in stats:
        raise ProcessLookupError(f"no process {pid}")
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (ppid, _) in stats.items() if ppid == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(stats[p][1] for p in tree) / CLK_TCK


def percentile(sorted_values: list[float], q: int) -> float:
    """Linear-interpolated percentile (q in 1..99) of an already sorted, non-empty list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[q - 1]


async def run_batch(
    run_one: RunOne,
    client: Client,
    task_queue: str,
    workflow_ids: list[str],
    concurrency: int,
    timeout: float,
) -> Batch:
    """Run one workflow per id, at most `concurrency` at a time, giving up after `timeout` s."""
    latencies: list[float] = []
    errors: list[str] = []
    pending = iter(workflow_ids)

    async def lane() -> None:
        for workflow_id in pending:
            started = time.perf_counter()
            try:
                await run_one(client, workflow_id, task_queue)
            except Exception as exc:  # any failure is counted, not raised
                errors.append(f"{type(exc).__name__}: {exc}")
            else:
                latencies.append(time.perf_counter() - started)

    timed_out = False
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(lane() for _ in range(concurrency)))
    except TimeoutError:
        timed_out = True
    return Batch(latencies, errors, time.perf_counter() - started, timed_out)


async def run_workload(
    name: str, client: Client, task_queue: str, args: argparse.Namespace
) -> WorkloadResult:
    """Warm up, then run the measured batch of one workload."""
    run_one = WORKLOADS[name]
    prefix = f"{task_queue}-{name}"
    warmup_ids = [f"{prefix}-warmup-{i}" for i in range(args.warmup)]
    await run_batch(run_one, client, task_queue, warmup_ids, args.concurrency, args.timeout)

    cpu_before = tree_cpu_seconds(args.server_pid) if args.server_pid else None
    ids = [f"{prefix}-{i}" for i in range(args.workflows)]
    batch = await run_batch(run_one, client, task_queue, ids, args.concurrency, args.timeout)
    cpu_after = tree_cpu_seconds(args.server_pid) if args.server_pid else None

    completed = len(batch.latencies)
    lat_ms = sorted(x * 1000 for x in batch.latencies)
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return WorkloadResult(
        workload=name,
        workflows=args.workflows,
        completed=completed,
        errors=len(batch.errors),
        timed_out=batch.timed_out,
        wall_s=batch.wall_s,
        workflows_per_s=completed / batch.wall_s,
        p50_ms=percentile(lat_ms, 50) if lat_ms else None,
        p95_ms=percentile(lat_ms, 95) if lat_ms else None,
        p99_ms=percentile(lat_ms, 99) if lat_ms else None,
        server_cpu_s=cpu,
        server_cpu_s_per_wf=cpu / completed if cpu is not None and completed else None,
        first_error=batch.errors[0] if batch.errors else None,
    )


async def start_worker(address: str, namespace: str, task_queue: str) -> Process:
    """Start worker.py in its own process and wait until it says it is polling."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "worker.py"),
        *("--address", address, "--namespace", namespace, "--task-queue", task_queue),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), WORKER_READY_TIMEOUT)
    except TimeoutError:
        line = b""
    if line.strip() != b"ready":
        await stop_worker(proc)
        raise RuntimeError(f"bench worker did not start (exit code {proc.returncode})")
    return proc


async def stop_worker(proc: Process) -> None:
    """Close the worker's stdin (its signal to shut down) and wait for it, killing if needed."""
    assert proc.stdin
    proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 15)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(results: list[WorkloadResult]) -> str:
    """Render the results as an aligned plain-text table."""
    header = ["workload", "ok/n", "err", "wall s", "wf/s", "p50 ms", "p95 ms", "p99 ms"]
    header.append("srv CPU ms/wf")
    rows = [header]
    for r in results:
        cpu_ms = r.server_cpu_s_per_wf * 1000 if r.server_cpu_s_per_wf is not None else None
        rows.append(
            [
                r.workload + (" (timed out)" if r.timed_out else ""),
                f"{r.completed}/{r.workflows}",
                str(r.errors),
                fmt(r.wall_s, 2),
                fmt(r.workflows_per_s, 1),
                fmt(r.p50_ms, 1),
                fmt(r.p95_ms, 1),
                fmt(r.p99_ms, 1),
                fmt(cpu_ms, 2),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> list[WorkloadResult]:
    """Run every selected workload against one server."""
    client = await Client.connect(args.address, namespace=args.namespace)
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    worker = await start_worker(args.address, args.namespace, task_queue)
    results: list[WorkloadResult] = []
    try:
        for name in args.workload:
            print(
                f"running {name}: {args.workflows} workflows, {args.concurrency} in flight",
                file=sys.stderr,
            )
            result = await run_workload(name, client, task_queue, args)
            if result.first_error:
                print(f"  {result.errors} errors, first: {result.first_error}", file=sys.stderr)
            results.append(result)
    finally:
        await stop_worker(worker)
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True, help="server gRPC address, HOST:PORT")
    parser.add_argument("--namespace", default="default")
    parser.add_argument(
        "--workload",
        nargs="+",
        choices=list(WORKLOADS),
        default=list(WORKLOADS),
        help="workloads to run, in order (default: all)",
    )
    parser.add_argument(
        "-n", "--workflows", type=int, default=200, help="measured workflows per workload"
    )
    parser.add_argument("-c", "--concurrency", type=int, default=20, help="max workflows in flight")
    parser.add_argument(
        "--warmup", type=int, default=10, help="unmeasured workflows run first per workload"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="give up on a batch after this many seconds"
    )
    parser.add_argument("--server-pid", type=int, help="measure this process tree's CPU time")
    parser.add_argument(
        "--json", action="store_true", help="print a JSON report instead of a table"
    )
    args = parser.parse_args()
    if args.workflows < 1 or args.concurrency < 1 or args.warmup < 0 or args.timeout <= 0:
        parser.error("--workflows and --concurrency must be >= 1, --warmup >= 0, --timeout > 0")
    if args.server_pid and not Path(f"/proc/{args.server_pid}").is_dir():
        parser.error(f"--server-pid: no process {args.server_pid}")
    return args


def main() -> None:
    args = parse_args()
    results = asyncio.run(bench(args))
    if args.json:
        report = {
            "address": args.address,
            "namespace": args.namespace,
            "workflows": args.workflows,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "server_pid": args.server_pid,
            "cpus": os.cpu_count(),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "results": [dataclasses.asdict(r) for r in results],
        }
        print(json.dumps(report, indent=2))
    else:
        print(
            f"server {args.address}  namespace {args.namespace}  n={args.workflows}  c={args.concurrency}"
        )
        print(format_table(results))


if __name__ == "__main__":
    main()
