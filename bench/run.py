"""Benchmark a server that speaks Temporal's gRPC API, using the official Python SDK.

Runs each workload as N workflows with at most C in flight, against bench workers in separate
processes, and reports throughput, end-to-end latency percentiles and (with --server-pid) the
server's CPU-seconds per workflow. Several comma-separated addresses (processes of one cluster)
spread the workflows round-robin over them, with the workers spread over them too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import sys
import time
import uuid
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client, WorkflowUpdateFailedError
from workloads import (
    UPDATES_PER_WORKFLOW,
    ChildWorkflow,
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


async def run_child(client: Client, workflow_id: str, task_queue: str) -> None:
    await client.execute_workflow(ChildWorkflow.run, id=workflow_id, task_queue=task_queue)


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
    "child": run_child,
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
    # With several --server-pid: each one's CPU seconds, keyed by PID (as a string, for JSON).
    server_cpu_s_by_pid: dict[str, float] | None = None
    # With --db-name: the CPU time of the PostgreSQL backends serving that database.
    db_cpu_s: float | None = None
    db_cpu_s_per_wf: float | None = None
    # The bench's own processes during the batch: the worker processes (summed) and this
    # client process; divided by wall_s they are the share of a core each kept busy.
    worker_cpu_s: float | None = None
    worker_cpu_s_per_wf: float | None = None
    client_cpu_s: float | None = None
    client_cpu_s_per_wf: float | None = None


def proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime+stime+cutime+cstime in clock ticks) for every process now."""
    stats: dict[int, tuple[int, int]] = {}
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
    return stats


def tree_cpu_seconds(pid: int, stats: dict[int, tuple[int, int]] | None = None) -> float:
    """utime+stime of `pid` and its live descendants, plus their reaped children's, in seconds."""
    if stats is None:
        stats = proc_stats()
    if pid not in stats:
        raise ProcessLookupError(f"no process {pid}")
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (ppid, _) in stats.items() if ppid == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(stats[p][1] for p in tree) / CLK_TCK


def trees_cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """tree_cpu_seconds of each PID, from one reading of /proc."""
    stats = proc_stats()
    return {pid: tree_cpu_seconds(pid, stats) for pid in pids}


def backend_title(pid: int) -> list[str] | None:
    """The words of a PostgreSQL process's title, `postgres: ...`; None for other processes."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        return []  # gone, or unreadable: not known to be anything
    words = title.split()
    return words if words[:1] == ["postgres:"] else None


class BackendCpu:
    """CPU time of the local PostgreSQL backends serving one database, while it is measured.

    Backends are found by their process title, `postgres: [CLUSTER: ]USER DB HOST(PORT) STATE`,
    and sampled every SAMPLE_S: one that starts meanwhile counts from zero, one that exits
    (a pool replacing a connection) loses at most its last SAMPLE_S of CPU time.
    """

    SAMPLE_S = 0.2

    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self._others: set[int] = set()  # PIDs that are not PostgreSQL processes
        self._first: dict[int, int] = {}  # backend PID -> clock ticks when first seen
        self._last: dict[int, int] = {}  # backend PID -> clock ticks when last seen
        self._sampler: asyncio.Task[None] | None = None

    def _serves_db(self, pid: int) -> bool:
        words = backend_title(pid)
        if words is None:
            self._others.add(pid)
            return False
        # The client's address, HOST(PORT) or [local], follows the database name.
        client = next((i for i, w in enumerate(words) if w.endswith(")") or w == "[local]"), 0)
        return client > 1 and words[client - 1] == self.db_name

    def _sample(self) -> None:
        initial = self._sampler is None
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in self._others:
                continue
            pid = int(entry)
            if pid not in self._last and not self._serves_db(pid):
                continue
            try:
                raw = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            ticks = sum(int(f) for f in raw[raw.rindex(")") + 2 :].split()[11:13])
            self._first.setdefault(pid, ticks if initial else 0)
            self._last[pid] = ticks

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.SAMPLE_S)
            self._sample()

    def start(self) -> None:
        self._sample()
        self._sampler = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> float:
        """Stop sampling; the backends' CPU seconds since start()."""
        assert self._sampler is not None
        self._sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sampler
        self._sample()
        return sum(self._last[p] - self._first[p] for p in self._last) / CLK_TCK


def percentile(sorted_values: list[float], q: int) -> float:
    """Linear-interpolated percentile (q in 1..99) of an already sorted, non-empty list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[q - 1]


async def run_batch(
    run_one: RunOne,
    clients: list[Client],
    task_queue: str,
    workflow_ids: list[str],
    concurrency: int,
    timeout: float,
) -> Batch:
    """Run one workflow per id, at most `concurrency` at a time, giving up after `timeout` s.

    Workflow i is driven entirely (start, queries, signals, updates, result) through
    clients[i % len(clients)].
    """
    latencies: list[float] = []
    errors: list[str] = []
    pending = iter(enumerate(workflow_ids))

    async def lane() -> None:
        for i, workflow_id in pending:
            started = time.perf_counter()
            try:
                await run_one(clients[i % len(clients)], workflow_id, task_queue)
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
    name: str,
    clients: list[Client],
    task_queue: str,
    args: argparse.Namespace,
    worker_pids: list[int] | None = None,
) -> WorkloadResult:
    """Warm up, then run the measured batch of one workload."""
    run_one = WORKLOADS[name]
    prefix = f"{task_queue}-{name}"
    warmup_ids = [f"{prefix}-warmup-{i}" for i in range(args.warmup)]
    await run_batch(run_one, clients, task_queue, warmup_ids, args.concurrency, args.timeout)

    pids: list[int] = args.server_pid or []
    worker_pids = worker_pids or []
    cpu_before = trees_cpu_seconds([*pids, *worker_pids])
    client_before = time.process_time()
    db = BackendCpu(args.db_name) if args.db_name else None
    if db is not None:
        db.start()
    ids = [f"{prefix}-{i}" for i in range(args.workflows)]
    profilers = [await start_profiler(pid, name, args.profile) for pid in pids if args.profile]
    batch = await run_batch(run_one, clients, task_queue, ids, args.concurrency, args.timeout)
    cpu_after = trees_cpu_seconds([*pids, *worker_pids])
    client_cpu = time.process_time() - client_before
    for profiler in profilers:
        await stop_profiler(profiler)
    db_cpu = await db.stop() if db is not None else None

    completed = len(batch.latencies)
    lat_ms = sorted(x * 1000 for x in batch.latencies)
    by_pid = {pid: cpu_after[pid] - cpu_before[pid] for pid in pids}
    cpu = sum(by_pid.values()) if pids else None
    worker_cpu = sum(cpu_after[p] - cpu_before[p] for p in worker_pids) if worker_pids else None
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
        server_cpu_s_by_pid={str(p): c for p, c in by_pid.items()} if len(pids) > 1 else None,
        db_cpu_s=db_cpu,
        db_cpu_s_per_wf=db_cpu / completed if db_cpu is not None and completed else None,
        worker_cpu_s=worker_cpu,
        worker_cpu_s_per_wf=worker_cpu / completed
        if worker_cpu is not None and completed
        else None,
        client_cpu_s=client_cpu,
        client_cpu_s_per_wf=client_cpu / completed if completed else None,
    )


async def start_profiler(pid: int, workload: str, directory: Path) -> Process:
    """py-spy sampling `pid` (100 Hz) into DIRECTORY/WORKLOAD-PID.speedscope.json until
    stopped; open the file in https://www.speedscope.app or summarise it with
    bench/profile_summary.py. Its own CPU is not in the server's (another process tree)."""
    directory.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    output = directory / f"{workload}-{pid}.speedscope.json"
    return await asyncio.create_subprocess_exec(
        str(py_spy), "record", "--pid", str(pid), "--rate", "100", "--format", "speedscope",
        "--output", str(output), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def stop_profiler(proc: Process) -> None:
    """SIGINT makes py-spy write its file and exit."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    await proc.wait()


async def start_worker(address: str, namespace: str, task_queue: str, *extra_args: str) -> Process:
    """Start worker.py in its own process and wait until it says it is polling."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "worker.py"),
        *("--address", address, "--namespace", namespace, "--task-queue", task_queue),
        *extra_args,
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


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def core_percent(cpu_s: float | None, r: WorkloadResult) -> float | None:
    """CPU seconds over the batch's wall time, as a percentage of one core."""
    return None if cpu_s is None or not r.wall_s else 100 * cpu_s / r.wall_s


def format_table(results: list[WorkloadResult], db_column: bool = False) -> str:
    """Render the results as an aligned plain-text table."""
    header = ["workload", "ok/n", "err", "wall s", "wf/s", "p50 ms", "p95 ms", "p99 ms"]
    header.append("srv CPU ms/wf")
    if db_column:
        header.append("db CPU ms/wf")
    header += ["wkr CPU ms/wf", "cli CPU ms/wf", "wkr core %", "cli core %"]
    rows = [header]
    for r in results:
        cpu_ms = r.server_cpu_s_per_wf * 1000 if r.server_cpu_s_per_wf is not None else None
        db_ms = r.db_cpu_s_per_wf * 1000 if r.db_cpu_s_per_wf is not None else None
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
                *([fmt(db_ms, 2)] if db_column else []),
                fmt(ms(r.worker_cpu_s_per_wf), 2),
                fmt(ms(r.client_cpu_s_per_wf), 2),
                fmt(core_percent(r.worker_cpu_s, r), 0),
                fmt(core_percent(r.client_cpu_s, r), 0),
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
    """Run every selected workload against one server (or the processes of one cluster)."""
    addresses: list[str] = args.addresses
    clients = [await Client.connect(a, namespace=args.namespace) for a in addresses]
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    worker_count: int = args.workers or len(addresses)
    workers: list[Process] = []
    results: list[WorkloadResult] = []
    try:
        for i in range(worker_count):
            address = addresses[i % len(addresses)]
            workers.append(await start_worker(address, args.namespace, task_queue))
        for name in args.workload:
            print(
                f"running {name}: {args.workflows} workflows, {args.concurrency} in flight",
                file=sys.stderr,
            )
            worker_pids = [w.pid for w in workers]
            result = await run_workload(name, clients, task_queue, args, worker_pids)
            if result.first_error:
                print(f"  {result.errors} errors, first: {result.first_error}", file=sys.stderr)
            results.append(result)
    finally:
        await asyncio.gather(*(stop_worker(w) for w in workers))
    return results


def pid_list(text: str) -> list[int]:
    """`--server-pid` value: one PID or several comma-separated."""
    try:
        pids = [int(p) for p in text.split(",")]
    except ValueError:
        pids = []
    if not pids or min(pids) < 1:
        raise argparse.ArgumentTypeError(f"expected PID[,PID...], got {text!r}")
    return pids


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--address",
        required=True,
        help="server gRPC address, HOST:PORT, or several comma-separated (processes of one "
        "cluster): workflow i goes to address i mod count",
    )
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
    parser.add_argument(
        "--workers",
        type=int,
        help="bench worker processes, worker i polling address i mod count "
        "(default: one per address)",
    )
    parser.add_argument(
        "--server-pid",
        type=pid_list,
        action="extend",
        metavar="PID[,PID...]",
        help="measure the CPU time of these process trees, summed (repeatable)",
    )
    parser.add_argument(
        "--db-name",
        help="also measure the CPU time of the local PostgreSQL backends serving this database",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON report instead of a table"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample each --server-pid with py-spy during each measured batch: one speedscope"
        " file per workload and PID in DIR",
    )
    args = parser.parse_args()
    if args.workflows < 1 or args.concurrency < 1 or args.warmup < 0 or args.timeout <= 0:
        parser.error("--workflows and --concurrency must be >= 1, --warmup >= 0, --timeout > 0")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    args.addresses = [a.strip() for a in args.address.split(",") if a.strip()]
    if not args.addresses:
        parser.error("--address: expected HOST:PORT[,HOST:PORT...]")
    for pid in args.server_pid or []:
        if not Path(f"/proc/{pid}").is_dir():
            parser.error(f"--server-pid: no process {pid}")
    if args.profile and not args.server_pid:
        parser.error("--profile needs --server-pid")
    if args.server_pid and len(set(args.server_pid)) != len(args.server_pid):
        parser.error("--server-pid: a PID is given twice")
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
            "server_pid": args.server_pid[0] if args.server_pid else None,
            "server_pids": args.server_pid or [],
            "workers": args.workers or len(args.addresses),
            "db_name": args.db_name,
            "cpus": os.cpu_count(),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "results": [dataclasses.asdict(r) for r in results],
        }
        print(json.dumps(report, indent=2))
    else:
        print(
            f"server {args.address}  namespace {args.namespace}  n={args.workflows}  c={args.concurrency}"
        )
        print(format_table(results, db_column=args.db_name is not None))


if __name__ == "__main__":
    main()
