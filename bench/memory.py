"""Server memory as open workflows grow: RSS idle, with N workflows open, and after they close.

For each server (--servers; default Aion on a SQLite file and the reference in WAL mode): start
it on a free loopback port and a fresh database, record its RSS idle, start one bench worker
process (worker.py --progress) and N `BenchMemoryWait` workflows (at most --concurrency start
calls in flight), wait until the worker has run the first workflow task of every one (so each is
open and loaded in the server), record RSS, signal each one `release` and wait for its result
(same concurrency), record RSS once all are closed and again after --settle seconds. RSS is the
sum over the server's process tree (/proc/PID/status VmRSS); the peak is the highest such sum
sampled every 0.2 s over the whole run, and VmHWM (the kernel's own peak, per process) of the
server's main process. Prints a markdown table (and writes it to --output if given).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from run import start_worker, stop_worker
from side_by_side import (
    AION_MODES,
    REFERENCE_MODES,
    ROOT,
    TEMPORAL,
    free_port,
    log_tail,
    machine,
    reference_argv,
    stop,
    wait_ready,
    with_db,
)
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from workloads import MemoryWaitWorkflow

SERVERS = [f"aion-{m}" for m in AION_MODES] + ["aion-postgres"]
SERVERS += [f"temporal-{m}" for m in REFERENCE_MODES]
SAMPLE_S = 0.2
PROGRESS_STALL_S = 120.0  # give up waiting for first workflow tasks after this long without any
SAMPLE_DESCRIBE = 50  # open workflows checked with DescribeWorkflowExecution before measuring


def tree_pids(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, frontier = [pid], [pid]
    while frontier:
        kids = children.get(frontier.pop(), [])
        tree += kids
        frontier += kids
    return tree


def status_kb(pid: int, key: str) -> int:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    return sum(status_kb(p, "VmRSS") for p in tree_pids(pid)) / 1024


class PeakSampler:
    """The highest tree RSS of `pid`, sampled every SAMPLE_S in a thread until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))

    def __enter__(self) -> PeakSampler:
        self.peak_mb = tree_rss_mb(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class MemoryResult:
    """One server's figures (RSS in MiB, times in seconds), or why there are none."""

    server: str
    workflows: int
    problem: str | None = None
    load_before: float | None = None
    rss_idle: float | None = None
    rss_open: float | None = None
    rss_closed: float | None = None
    rss_settled: float | None = None
    rss_peak: float | None = None
    hwm_main: float | None = None
    start_s: float | None = None  # all start calls answered
    first_tasks_s: float | None = None  # from the first start call to the last first task
    close_s: float | None = None  # signalling all and awaiting all results
    errors: list[str] = field(default_factory=list)


async def in_lanes(
    ids: list[str], concurrency: int, action: Callable[[str], Awaitable[None]], errors: list[str]
) -> None:
    """Call `action(id)` for every id, `concurrency` at a time; failures go to `errors`."""
    pending = iter(ids)

    async def lane() -> None:
        for workflow_id in pending:
            try:
                await action(workflow_id)
            except Exception as exc:  # counted, not raised
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def read_progress(worker: Process, progress: list[int]) -> None:
    """Keep `progress` = [first tasks, completed] up to date from the worker's stdout."""
    assert worker.stdout
    while line := await worker.stdout.readline():
        words = line.split()
        if len(words) == 3 and words[0] == b"progress":
            progress[:] = [int(words[1]), int(words[2])]


async def wait_for(progress: list[int], index: int, target: int, what: str) -> None:
    """Wait until progress[index] reaches `target`; raise if it stalls for PROGRESS_STALL_S."""
    last, last_change, last_report = -1, time.monotonic(), time.monotonic()
    while progress[index] < target:
        if time.monotonic() - last_report > 30:
            print(f"   {what}: {progress[index]}/{target}", file=sys.stderr)
            last_report = time.monotonic()
        if progress[index] != last:
            last, last_change = progress[index], time.monotonic()
        elif time.monotonic() - last_change > PROGRESS_STALL_S:
            raise RuntimeError(f"{what}: stuck at {last}/{target} for {PROGRESS_STALL_S:.0f} s")
        await asyncio.sleep(0.2)


async def no_pending_first_task(client: Client, ids: list[str]) -> None:
    """Check a sample of the workflows with DescribeWorkflowExecution: open, no workflow task
    pending (their first one has completed)."""
    for workflow_id in random.sample(ids, min(SAMPLE_DESCRIBE, len(ids))):
        for _ in range(50):
            described = await client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(
                    namespace="default", execution=WorkflowExecution(workflow_id=workflow_id)
                )
            )
            if not described.HasField("pending_workflow_task"):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"{workflow_id}: its workflow task is still pending")


async def measure(
    server: str, pid: int, address: str, args: argparse.Namespace, result: MemoryResult
) -> None:
    client = await Client.connect(address, namespace="default")
    await asyncio.sleep(args.settle)
    result.rss_idle = tree_rss_mb(pid)
    print(f"== {server}: idle RSS {result.rss_idle:.1f} MiB", file=sys.stderr)
    task_queue = f"bench-memory-{uuid.uuid4().hex[:8]}"
    ids = [f"{task_queue}-{i}" for i in range(args.workflows)]
    worker = await start_worker(address, "default", task_queue, "--progress")
    progress = [0, 0]
    reader = asyncio.create_task(read_progress(worker, progress))
    try:
        with PeakSampler(pid) as peak:

            async def start(workflow_id: str) -> None:
                await client.start_workflow(
                    MemoryWaitWorkflow.run, id=workflow_id, task_queue=task_queue
                )

            async def release(workflow_id: str) -> None:
                handle = client.get_workflow_handle(workflow_id)
                await handle.signal(MemoryWaitWorkflow.release)
                await handle.result()

            began = time.monotonic()
            await in_lanes(ids, args.concurrency, start, result.errors)
            result.start_s = time.monotonic() - began
            print(f"== {server}: {len(ids)} started in {result.start_s:.1f} s", file=sys.stderr)
            started = len(ids) - len(result.errors)
            await wait_for(progress, 0, started, "first workflow tasks")
            result.first_tasks_s = time.monotonic() - began
            await no_pending_first_task(client, ids)
            await asyncio.sleep(1.0)  # the last completions reach the server
            result.rss_open = tree_rss_mb(pid)
            print(f"== {server}: all open, RSS {result.rss_open:.1f} MiB", file=sys.stderr)

            began = time.monotonic()
            await in_lanes(ids, args.concurrency, release, result.errors)
            result.close_s = time.monotonic() - began
            result.rss_closed = tree_rss_mb(pid)
            print(f"== {server}: all closed, RSS {result.rss_closed:.1f} MiB", file=sys.stderr)
            await asyncio.sleep(args.settle)
            result.rss_settled = tree_rss_mb(pid)
        result.rss_peak = peak.peak_mb
        result.hwm_main = status_kb(pid, "VmHWM") / 1024
    finally:
        await stop_worker(worker)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


def server_argv(
    server: str, port: int, tmp: str, args: argparse.Namespace, taken: set[int]
) -> list[str]:
    kind, _, mode = server.partition("-")
    db = Path(tmp, f"{server}.db")
    if kind == "temporal":
        return with_db(reference_argv(port, None, taken), REFERENCE_MODES[mode], db)
    argv = [sys.executable, "-m", "aion", "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
    argv += ["--port", str(port)]
    if mode == "postgres":
        return argv + ["--dsn", args.dsn]
    return with_db(argv, AION_MODES[mode], db)


def run_one(server: str, workflows: int, args: argparse.Namespace, tmp: str) -> MemoryResult:
    taken: set[int] = set()
    port = free_port(None, taken)
    argv = server_argv(server, port, tmp, args, taken)
    address = f"127.0.0.1:{port}"
    result = MemoryResult(server, workflows)
    log = Path(tmp, f"{server}-{workflows}.log")
    print(f"== {server}: starting {' '.join(argv)}", file=sys.stderr)
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            asyncio.run(wait_ready(proc, address))
        except RuntimeError as exc:
            tail = log_tail(log)
            print("\n".join(tail), file=sys.stderr)
            result.problem = f"server did not start ({exc})"
            return result
        result.load_before = os.getloadavg()[0]
        one = argparse.Namespace(**{**vars(args), "workflows": workflows})
        try:
            asyncio.run(measure(server, proc.pid, address, one, result))
        except Exception as exc:
            result.problem = f"{type(exc).__name__}: {exc}"
            print("\n".join(log_tail(log)), file=sys.stderr)
        return result
    finally:
        stop(proc)


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: list[MemoryResult], args: argparse.Namespace) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Memory bench, {when}; machine: {machine()}.",
        (
            f"`BenchMemoryWait` workflows (each waits for one signal), {args.concurrency} calls"
            f" in flight, one bench worker process; settle {args.settle:g} s. RSS in MiB, summed"
            " over the server's process tree."
        ),
        "",
        "| server | workflows | idle | all open | peak | all closed | after settle "
        "| settled − idle | KiB per open wf | start s | first tasks s | signal+close s | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.problem and r.rss_open is None:
            lines.append(f"| {r.server} | {r.workflows} |" + " - |" * 10 + f" {len(r.errors)} |")
            continue
        growth = (
            r.rss_settled - r.rss_idle
            if r.rss_settled is not None and r.rss_idle is not None
            else None
        )
        per_open = (
            (r.rss_open - r.rss_idle) * 1024 / r.workflows
            if r.rss_open is not None and r.rss_idle is not None
            else None
        )
        lines.append(
            f"| {r.server} | {r.workflows} | {fmt(r.rss_idle)} | {fmt(r.rss_open)} "
            f"| {fmt(r.rss_peak)} | {fmt(r.rss_closed)} | {fmt(r.rss_settled)} "
            f"| {fmt(growth)} | {fmt(per_open, 1)} | {fmt(r.start_s, 1)} | {fmt(r.first_tasks_s, 1)} "
            f"| {fmt(r.close_s, 1)} | {len(r.errors)} |"
        )
    lines.append("")
    for r in results:
        note = f"- {r.server}, {r.workflows}: 1-min load average before {fmt(r.load_before, 2)}"
        if r.hwm_main is not None:
            note += f"; VmHWM of the main process {r.hwm_main:.0f} MiB"
        if r.problem:
            note += f"; **{r.problem}**"
        if r.errors:
            note += f"; first error: {r.errors[0]}"
        lines.append(note)
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "-n",
        "--workflows",
        type=int,
        nargs="+",
        default=[10_000],
        help="open workflows; several values run one after the other (default 10000)",
    )
    parser.add_argument("-c", "--concurrency", type=int, default=200, help="calls in flight")
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        default=["aion-file", "temporal-wal"],
        help="servers to measure, one after the other (default: aion-file temporal-wal)",
    )
    parser.add_argument(
        "--dsn",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL for aion-postgres (a database of its own: it creates its tables there)",
    )
    parser.add_argument(
        "--reference-max",
        type=int,
        default=10_000,
        help="skip the reference (temporal-*) for larger -n (it starts ~50 wf/s; default 10000)",
    )
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds idle before the first and last RSS"
    )
    parser.add_argument("-o", "--output", type=Path, help="also write the markdown here")
    args = parser.parse_args()
    if min(args.workflows) < 1 or args.concurrency < 1 or args.settle < 0:
        parser.error("--workflows and --concurrency must be >= 1, --settle >= 0")
    if not TEMPORAL.exists() and any(s.startswith("temporal-") for s in args.servers):
        parser.error(f"no reference binary at {TEMPORAL}")
    return args


def main() -> None:
    args = parse_args()
    results: list[MemoryResult] = []
    with tempfile.TemporaryDirectory(prefix="aion-memory-") as tmp:
        for workflows in args.workflows:
            for server in args.servers:
                if server.startswith("temporal-") and workflows > args.reference_max:
                    print(
                        f"== {server}: skipped for {workflows} (--reference-max)", file=sys.stderr
                    )
                    continue
                results.append(run_one(server, workflows, args, tmp))
    table = markdown(results, args)
    print(table)
    if args.output:
        args.output.write_text(table)


if __name__ == "__main__":
    main()
