"""Hybrid automatic failover at full size (issue 21, acceptance 2): two Aion clusters, A and B,
each one `aion server start` process on its own storage (SQLite files, or with --postgres two
PostgreSQL databases), a global namespace active on A, and `aion failover-controller` watching it.

1. `-n` BenchFailover workflows are started on A and replicated to B. A bench worker polls each
   cluster; the client knows both addresses and sends each call to the cluster that answered
   last, trying the other when one fails.
2. Each workflow is sent `--signals` signals, about `--pace` s apart; each signal is followed by an
   activity and a timer in the workflow.
3. `--lag-after` s into that, B is paused (SIGSTOP), so replication lags; `--lag` s later A is
   killed (SIGKILL) and B resumed. The controller (`--interval`, `--failures`) fails over to B.
4. As soon as B is active: what B has of each workflow (its history) is compared with what A had
   written (A's database, read after the kill) and with what had not replicated (A's
   replication tasks after B's watermarks).
5. A is restarted on its storage; the workflows complete; both clusters' histories become equal;
   every signal the client saw acknowledged must be in the final histories.

Prints a JSON summary on stdout (progress on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cluster import admin, aion_commit
from google.protobuf.duration_pb2 import Duration
from run import start_worker, stop_worker
from side_by_side import ROOT, free_port, log_tail, machine, stop, wait_ready
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.operatorservice.v1 import AddOrUpdateRemoteClusterRequest
from temporalio.api.replication.v1 import ClusterReplicationConfig
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RetryConfig, RPCError, RPCStatusCode
from workloads import FailoverWorkflow

from aion.persistence.postgres import PostgresStore
from aion.persistence.sqlite import SQLiteStore
from aion.persistence.store import Store

T = TypeVar("T")
NUM_SHARDS = 4
TASK_TIMEOUT = timedelta(seconds=2)  # a workflow task lost with A is retried soon on B
RPC_TIMEOUT = timedelta(seconds=5)
RUNNING_SAMPLE_S = 5.0  # how often the summary samples the workflows still running
# The client's own retries stay short, so that it turns to the other address instead.
CLIENT_RETRIES = RetryConfig(max_retries=2, max_elapsed_time_millis=2000)
# What a call may answer while a cluster is down, standby or handing over: try the other one.
RETRYABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.FAILED_PRECONDITION,  # NamespaceNotActive
    RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.UNKNOWN,  # the SDK's "transport error": the connection broke mid-call
}
SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED


@dataclass
class Cluster:
    """One cluster: an `aion server start` process on its own storage."""

    name: str
    initial_version: int
    storage: str  # a SQLite file, or a PostgreSQL DSN
    postgres: bool
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "aion", "server", "start", "--ip", "127.0.0.1"]
        argv += ["--port", str(self.port), "--dsn" if self.postgres else "--db-filename"]
        argv += [self.storage, "--num-shards", str(NUM_SHARDS), "--log-level", "warning"]
        argv += ["--cluster-name", self.name, "--enable-global-namespace"]
        argv += ["--initial-failover-version", str(self.initial_version)]
        argv += ["--master-cluster-name", "A"]
        if self.name != "A":
            argv += ["--redirection-policy", "selected-apis-forwarding"]
        return argv

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        await wait_ready(self.proc, self.address)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def store(self) -> Store:
        """Its storage, opened from outside the server (not opened yet)."""
        if self.postgres:
            return PostgresStore(self.storage, upgrade_schema=False)
        return SQLiteStore(self.storage)


class BothClusters:
    """A client of both clusters: each call goes to the cluster that answered last, and to the
    other one when it fails with what a down, standby or handing-over cluster answers."""

    def __init__(self, clients: list[Client], timeout_s: float) -> None:
        self.clients = clients
        self.timeout_s = timeout_s
        self.preferred = 0
        self.errors: Counter[str] = Counter()

    async def call(self, op: Callable[[Client], Awaitable[T]]) -> tuple[T, int]:
        """`op`'s result and the index of the cluster that gave it."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            for offset in range(len(self.clients)):
                i = (self.preferred + offset) % len(self.clients)
                try:
                    result = await op(self.clients[i])
                except RPCError as e:
                    if e.status not in RETRYABLE:
                        raise
                    self.errors[e.status.name] += 1
                    continue
                self.preferred = i
                return result, i
            if time.monotonic() > deadline:
                raise TimeoutError(f"no cluster answered within {self.timeout_s:.0f} s")
            await asyncio.sleep(0.2)


@dataclass
class Ack:
    workflow_id: str
    value: str
    cluster: str  # the one that acknowledged it
    at: float  # time.monotonic()


@dataclass
class Controller:
    """`aion failover-controller` and the failover lines it printed (with when they came)."""

    proc: asyncio.subprocess.Process
    failovers: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            if line.startswith(b"{"):
                self.failovers.append((time.monotonic(), json.loads(line)))


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    until = time.monotonic() + timeout
    while (result := await check()) is None:
        if time.monotonic() > until:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.2)
    return result


async def bounded(calls: list[Awaitable[T]], limit: int) -> list[T]:
    """Await `calls`, at most `limit` at a time; their results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def connect(a: Cluster, b: Cluster) -> None:
    """Connect each cluster to the other, replication on."""
    for here, there in ((a, b), (b, a)):
        client = await Client.connect(here.address)
        await client.operator_service.add_or_update_remote_cluster(
            AddOrUpdateRemoteClusterRequest(
                frontend_address=there.address,
                enable_remote_cluster_connection=True,
                enable_replication=True,
            )
        )


async def register_global(a: Cluster, b: Cluster, namespace: str) -> None:
    """The namespace, global on A and B, active on A; returns once B has it."""
    client = await Client.connect(a.address)
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace,
            workflow_execution_retention_period=Duration(seconds=86400),
            is_global_namespace=True,
            clusters=[ClusterReplicationConfig(cluster_name=c.name) for c in (a, b)],
            active_cluster_name=a.name,
        )
    )
    on_b = await Client.connect(b.address)

    async def replicated() -> bool | None:
        try:
            await on_b.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
        except RPCError:
            return None
        return True

    await eventually(replicated, 30, "namespace replicated to B")


async def replication_lag(source: Cluster) -> int:
    """The replication tasks of `source` that the other cluster has not applied."""
    argv = [sys.executable, "-m", "aion", "replication", "status", "--address", source.address]
    proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return sum(row["lag"] for row in json.loads(out)["sending"])


async def active_cluster(client: Client, namespace: str) -> tuple[str, int]:
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=1)
    )
    return described.replication_config.active_cluster_name, described.failover_version


def signal_values(events: list[HistoryEvent]) -> list[str]:
    return [
        json.loads(e.workflow_execution_signaled_event_attributes.input.payloads[0].data)
        for e in events
        if e.event_type == SIGNALED
    ]


async def history(client: Client, workflow_id: str) -> list[HistoryEvent]:
    fetched = await client.get_workflow_handle(workflow_id).fetch_history()
    return list(fetched.events)


@dataclass
class Written:
    """What A had written of one workflow when it died, and what of it had not replicated."""

    events: list[HistoryEvent]
    unreplicated_events: int  # in A's replication tasks after B's watermark of their shard
    unreplicated_tasks: int


async def written_on_a(
    a: Cluster, b: Cluster, namespace_id: str, ids: list[str]
) -> dict[str, Written]:
    """Per workflow, A's history from its storage (A is dead) and its replication tasks that B
    had not applied by its watermarks."""
    b_store = b.store()
    await b_store.open()
    try:
        marks = {
            w.shard_id: w.task_id
            for w in await b_store.replication_watermarks()
            if w.cluster == a.name
        }
    finally:
        await b_store.close()
    store = a.store()
    await store.open()
    try:
        unreplicated: Counter[str] = Counter()
        tasks: Counter[str] = Counter()
        for shard_id in range(NUM_SHARDS):
            for task in await store.read_replication_tasks(shard_id, marks.get(shard_id, 0), 10**9):
                if task.namespace_id == namespace_id:
                    unreplicated[task.workflow_id] += task.next_event_id - task.first_event_id
                    tasks[task.workflow_id] += 1
        written = {}
        for workflow_id in ids:
            current = await store.get_current_execution(namespace_id, workflow_id)
            assert current is not None, workflow_id
            raw = await store.read_events(namespace_id, workflow_id, current.run_id, 1, 10**6)
            written[workflow_id] = Written(
                [HistoryEvent.FromString(e) for e in raw],
                unreplicated[workflow_id],
                tasks[workflow_id],
            )
        return written
    finally:
        await store.close()


def rewound(
    written: dict[str, Written], on_b: dict[str, list[HistoryEvent]], new_version: int
) -> dict[str, Any]:
    """Compare what A had written with what B had when it became active (its events from
    before the failover: version below the new one)."""
    events_rewound, over_bound, prefix_differs, workflows_rewound = 0, [], [], 0
    unreplicated = sum(w.unreplicated_events for w in written.values())
    for workflow_id, w in written.items():
        before = [e for e in on_b[workflow_id] if e.version < new_version]
        key = [(e.event_id, e.version, e.event_type) for e in before]
        if key != [(e.event_id, e.version, e.event_type) for e in w.events[: len(before)]]:
            prefix_differs.append(workflow_id)
        lost = len(w.events) - len(before)
        events_rewound += max(lost, 0)
        workflows_rewound += lost > 0
        if lost > w.unreplicated_events:
            over_bound.append(workflow_id)
    return {
        "events_written_on_a": sum(len(w.events) for w in written.values()),
        "events_rewound": events_rewound,
        "workflows_rewound": workflows_rewound,
        "events_unreplicated": unreplicated,
        "tasks_unreplicated": sum(w.unreplicated_tasks for w in written.values()),
        "workflows_rewound_beyond_unreplicated": over_bound[:10],
        "workflows_whose_b_prefix_differs_from_a": prefix_differs[:10],
    }


def load() -> float:
    return round(os.getloadavg()[0], 2)


async def bench(args: argparse.Namespace, a: Cluster, b: Cluster) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "backend": "postgres" if args.postgres else "sqlite",
        "workflows": args.workflows,
        "signals_per_workflow": args.signals,
        "controller": {"interval": args.interval, "failures": args.failures},
        "load_before": load(),
    }
    for cluster in (a, b):
        await cluster.start()
    await connect(a, b)
    namespace = f"failover-{uuid.uuid4().hex[:8]}"
    await register_global(a, b, namespace)
    task_queue = f"failover-{uuid.uuid4().hex[:8]}"
    controller = Controller(
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "aion", "failover-controller", "-n", namespace),
            *("--cluster", f"A={a.address}", "--cluster", f"B={b.address}"),
            *("--interval", args.interval, "--failures", str(args.failures)),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
    )
    reader = asyncio.create_task(controller.read())
    workers = [await start_worker(c.address, namespace, task_queue) for c in (a, b)]
    try:
        clients = [
            await Client.connect(c.address, namespace=namespace, retry_config=CLIENT_RETRIES)
            for c in (a, b)
        ]
        both = BothClusters(clients, args.timeout)
        ids = [f"wf-{i}" for i in range(args.workflows)]
        started = time.monotonic()

        async def start(workflow_id: str) -> None:
            await both.call(
                lambda c: c.start_workflow(
                    FailoverWorkflow.run,
                    args.signals,
                    id=workflow_id,
                    task_queue=task_queue,
                    task_timeout=TASK_TIMEOUT,
                    rpc_timeout=RPC_TIMEOUT,
                )
            )

        await bounded([start(w) for w in ids], 50)
        await eventually(
            lambda: _zero(replication_lag(a)), args.timeout, "the starts replicated to B"
        )
        summary["starts_replicated_s"] = round(time.monotonic() - started, 2)
        print(f"== {len(ids)} workflows started and replicated", file=sys.stderr)

        acks: list[Ack] = []

        async def drive(workflow_id: str) -> None:
            for i in range(args.signals):
                await asyncio.sleep(args.pace * random.uniform(0.5, 1.5))
                value = f"s{i}"
                _, at = await both.call(
                    lambda c, v=value: c.get_workflow_handle(workflow_id).signal(
                        FailoverWorkflow.add, v, rpc_timeout=RPC_TIMEOUT
                    )
                )
                acks.append(Ack(workflow_id, value, "AB"[at], time.monotonic()))

        drivers = asyncio.gather(*(drive(w) for w in ids))
        await asyncio.sleep(args.lag_after)
        assert b.proc is not None
        os.kill(b.proc.pid, signal.SIGSTOP)
        paused = time.monotonic()
        try:
            await asyncio.sleep(args.lag)
            summary["load_at_kill"] = load()
            a.kill()
            killed = time.monotonic()
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        acked_by_a = {(k.workflow_id, k.value) for k in acks}
        print(f"== A killed; {len(acked_by_a)} signals acknowledged so far", file=sys.stderr)

        async def b_active() -> tuple[str, int] | None:
            try:
                active = await active_cluster(clients[1], namespace)
            except RPCError:
                return None
            return active if active[0] == b.name else None

        _, new_version = await eventually(b_active, 60, "B active")
        b_active_s = time.monotonic() - killed
        line_at, failover = await eventually(
            lambda: _first(controller.failovers), 10, "the controller's failover line"
        )
        summary["failover"] = {
            "controller": failover,
            "b_paused_s_before_kill": round(killed - paused, 2),
            "first_failed_check_after_kill_s": round(
                line_at - failover["since_first_failed_check_s"] - killed, 2
            ),
            "b_active_after_kill_s": round(b_active_s, 2),
            "new_failover_version": new_version,
        }
        print(f"== B active {b_active_s:.2f} s after the kill: {failover}", file=sys.stderr)

        # What B had when it became active: its events from before the new version are the
        # same until A is back (nothing more can come from A).
        on_b = dict(zip(ids, await bounded([history(clients[1], w) for w in ids], 20), strict=True))
        namespace_id = (
            await clients[1].workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
        ).namespace_info.id
        written = await written_on_a(a, b, namespace_id, ids)
        summary["rewound"] = rewound(written, on_b, new_version)
        signals_on_b = {
            (w, v)
            for w, events in on_b.items()
            for v in signal_values([e for e in events if e.version < new_version])
        }
        summary["rewound"]["acked_signals_missing_on_b_at_failover"] = len(
            acked_by_a - signals_on_b
        )
        print(f"== rewound: {summary['rewound']}", file=sys.stderr)

        await a.start()
        a_back = time.monotonic()
        print("== A restarted", file=sys.stderr)
        running: list[tuple[float, int]] = []  # (s since A is back, workflows running)

        async def none_running() -> bool | None:
            count, _ = await both.call(lambda c: c.count_workflows("ExecutionStatus='Running'"))
            since = round(time.monotonic() - a_back, 1)
            if not running or since - running[-1][0] >= RUNNING_SAMPLE_S or count.count == 0:
                running.append((since, count.count))
            return True if count.count == 0 else None

        closed = asyncio.create_task(
            eventually(none_running, args.timeout, "every workflow closed")
        )
        await drivers
        summary["signals_acknowledged"] = len(acks)
        summary["signals_acknowledged_by"] = dict(Counter(k.cluster for k in acks))
        summary["last_signal_acknowledged_after_a_back_s"] = round(acks[-1].at - a_back, 2)
        try:
            await closed
        except TimeoutError:
            summary["running_after_a_back"] = running
            summary["stuck"] = await stuck(clients, acks, ids)
            return summary
        summary["running_after_a_back"] = running
        results, _ = zip(
            *await bounded(
                [both.call(lambda c, w=w: c.get_workflow_handle(w).result()) for w in ids], 20
            ),
            strict=True,
        )
        summary["completed"] = sum(
            sorted(r) == [f"s{i}" for i in range(args.signals)] for r in results
        )
        summary["all_closed_after_a_back_s"] = round(time.monotonic() - a_back, 2)
        summary["run_s"] = round(time.monotonic() - started, 2)

        async def reconciled() -> dict[str, list[HistoryEvent]] | None:
            on_a = await bounded([history(clients[0], w) for w in ids], 20)
            final = await bounded([history(clients[1], w) for w in ids], 20)
            same = all(
                [e.SerializeToString(deterministic=True) for e in x]
                == [e.SerializeToString(deterministic=True) for e in y]
                for x, y in zip(on_a, final, strict=True)
            )
            return dict(zip(ids, final, strict=True)) if same else None

        final = await eventually(reconciled, args.timeout, "histories equal on A and B")
        summary["histories_equal_after_a_back_s"] = round(time.monotonic() - a_back, 2)
        in_final = {(w, v) for w, events in final.items() for v in signal_values(events)}
        missing = sorted({(k.workflow_id, k.value) for k in acks} - in_final)
        summary["acked_signals_missing_from_final_histories"] = len(missing)
        summary["duplicate_signal_events"] = sum(
            len(vs) - len(set(vs)) for vs in (signal_values(e) for e in final.values())
        )
        summary["client_errors_retried"] = dict(both.errors)
        summary["load_after"] = load()
        return summary
    finally:
        for worker in workers:
            await stop_worker(worker)
        controller.proc.terminate()
        await controller.proc.wait()
        reader.cancel()


async def stuck(clients: list[Client], acks: list[Ack], ids: list[str]) -> list[dict[str, Any]]:
    """What the first few workflows still running look like on each cluster."""
    found = []
    for workflow_id in ids:
        described = await clients[1].get_workflow_handle(workflow_id).describe()
        if described.status is None or described.status.name != "RUNNING":
            continue
        raw = described.raw_description
        per_cluster = {}
        for name, client in zip("AB", clients, strict=True):
            events = await history(client, workflow_id)
            per_cluster[name] = {
                "events": len(events),
                "last": [
                    f"{e.event_id} v{e.version} {EventType.Name(e.event_type)[11:]}"
                    for e in events[-4:]
                ],
                "signals": signal_values(events),
            }
        found.append(
            {
                "workflow_id": workflow_id,
                "acked": [k.value + "@" + k.cluster for k in acks if k.workflow_id == workflow_id],
                "pending_activities": len(raw.pending_activities),
                "pending_workflow_task": raw.HasField("pending_workflow_task"),
                **per_cluster,
            }
        )
        if len(found) == 5:
            break
    return found


async def _zero(count: Awaitable[int]) -> bool | None:
    return True if await count == 0 else None


async def _first(items: list[T]) -> T | None:
    return items[0] if items else None


def verdict(summary: dict[str, Any]) -> list[str]:
    """What the issue asks that this run did not show."""
    problems = []
    if "stuck" in summary:
        return ["not every workflow closed within --timeout (see `stuck`)"]
    if summary["failover"]["controller"]["since_first_failed_check_s"] >= 10:
        problems.append("B was not active within 10 s of the first failed check")
    if summary["completed"] != summary["workflows"]:
        problems.append("not every workflow completed with all its signals")
    if summary["rewound"]["workflows_rewound_beyond_unreplicated"]:
        problems.append("a workflow was rewound beyond what had not replicated")
    if summary["rewound"]["workflows_whose_b_prefix_differs_from_a"]:
        problems.append("B's events before the failover differ from A's")
    if summary["acked_signals_missing_from_final_histories"]:
        problems.append("an acknowledged signal is missing from the final histories")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--workflows", type=int, default=500)
    parser.add_argument("--signals", type=int, default=3, help="signals per workflow")
    parser.add_argument(
        "--pace", type=float, default=2.0, help="mean s between a workflow's signals"
    )
    parser.add_argument(
        "--lag-after", type=float, default=3.0, help="s of signalling before B is paused"
    )
    parser.add_argument("--lag", type=float, default=3.0, help="s B is paused before A is killed")
    parser.add_argument("--interval", default="1s", help="the controller's --interval")
    parser.add_argument("--failures", type=int, default=3, help="the controller's --failures")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound of each wait, s")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server, without a database; the bench's are created and dropped",
    )
    parser.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy the servers' logs here")
    args = parser.parse_args()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="aion-failover-bench-") as tmp:
        run_id = uuid.uuid4().hex[:8]
        if args.postgres:
            storage = [f"{args.pg}/aion_failover_{run_id}_{n.lower()}" for n in "AB"]
            for dsn in storage:
                asyncio.run(admin(args.pg, f'CREATE DATABASE "{dsn.rsplit("/", 1)[1]}"'))
        else:
            storage = [f"{tmp}/{n}.db" for n in "AB"]
        a, b = (
            Cluster(name, version, db, args.postgres, Path(tmp) / f"{name}.log")
            for name, version, db in zip("AB", (1, 2), storage, strict=True)
        )
        try:
            summary = asyncio.run(bench(args, a, b))
        finally:
            for cluster in (a, b):
                if cluster.proc is not None:
                    stop(cluster.proc)
                if cluster.log.exists() and args.keep_logs:
                    args.keep_logs.mkdir(parents=True, exist_ok=True)
                    shutil.copy(cluster.log, args.keep_logs / cluster.log.name)
                if cluster.log.exists():
                    logged = log_tail(cluster.log, 10**6)
                    if logged:
                        print(
                            f"-- {cluster.name} logged:", *logged[-10:], sep="\n  ", file=sys.stderr
                        )
            if args.postgres:
                for dsn in storage:
                    db = dsn.rsplit("/", 1)[1]
                    asyncio.run(admin(args.pg, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    summary["when"] = f"{started:%Y-%m-%d %H:%M}–{datetime.now(UTC):%H:%M} UTC"
    summary["machine"] = machine()
    summary["aion"] = aion_commit()
    summary["problems"] = verdict(summary)
    print(json.dumps(summary, indent=2))
    if summary["problems"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
