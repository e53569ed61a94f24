"""Every daily `temporal` CLI (1.9.1) command of issue 16 against Aion, each compared with the
reference dev server where the output is comparable: `workflow delete`, every batch form
(`workflow terminate/cancel/signal/reset/delete/update-options --query`, `batch
list/describe/terminate`), `task-queue describe` (default, enhanced mode), `task-queue
list-partition`, `task-queue config set/get`, `workflow reset --type LastWorkflowTask`,
`activity pause/unpause/reset/update-options`, `workflow describe` (history size, state
transitions, extended info), not-found texts, `workflow pause/unpause`, `operator cluster
list`, `operator namespace create/describe/delete` and `worker list/describe/count`.

Each scenario runs on both servers with an SDK worker on each where it needs one; JSON output
(`-o json`) is compared after ids, times and other per-server values are normalised.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import event_type_pb2
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.worker import Worker

from tests.conformance.reference import ReferenceServer, running_reference, temporal_binary
from tests.helpers import unique
from tests.servers import AionProcess

pytestmark = pytest.mark.timeout(240)

DEADLINE_S = 30.0
ACTIVITY_ID = "flaky-1"


@activity.defn
async def always_fails() -> str:
    raise RuntimeError("always fails")


@activity.defn
async def succeeds() -> str:
    return "done"


@workflow.defn
class RetryingActivity:
    """Runs an activity that fails on every attempt (retried each second) until reset."""

    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            always_fails,
            activity_id=ACTIVITY_ID,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=1)
            ),
        )


@workflow.defn
class WaitsForSignal:
    """Runs one activity, then waits for `finish`."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity(succeeds, start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: self.done)
        return "finished"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


# ---- the servers and the CLI --------------------------------------------------------------
@pytest.fixture(scope="module")
async def reference() -> AsyncIterator[ReferenceServer]:
    async with running_reference() as server:
        yield server


class Cli:
    """`temporal ...` against one server."""

    def __init__(self, address: str) -> None:
        binary = temporal_binary()
        assert binary is not None
        self.binary, self.address = binary, address

    async def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [self.binary, *args, "--address", self.address],
            capture_output=True,
            text=True,
            timeout=60,
        )

    async def ok(self, *args: str) -> str:
        done = await self.run(*args)
        assert done.returncode == 0, f"{args}: {done.stderr}"
        return done.stdout

    async def json(self, *args: str) -> Any:
        return json.loads(await self.ok(*args, "-o", "json"))

    async def fails(self, *args: str) -> str:
        done = await self.run(*args)
        assert done.returncode != 0, f"{args} succeeded: {done.stdout}"
        return done.stderr.strip()


class Side:
    """One server under comparison: its CLI and an SDK client with a worker."""

    def __init__(self, name: str, address: str, client: Client) -> None:
        self.name, self.cli, self.client = name, Cli(address), client


@pytest.fixture
async def sides(
    aion_server: AionProcess, reference: ReferenceServer
) -> AsyncIterator[tuple[Side, Side]]:
    """Aion and the reference, each with a client whose worker heartbeats every second."""
    runtime = Runtime(telemetry=TelemetryConfig(), worker_heartbeat_interval=timedelta(seconds=1))
    aion = await Client.connect(aion_server.address, runtime=runtime)
    ref = await Client.connect(reference.address, runtime=runtime)
    yield Side("aion", aion_server.address, aion), Side("reference", reference.address, ref)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + DEADLINE_S
    while not await check():
        assert loop.time() < until, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def workers(stack: AsyncExitStack, task_queue: str, *sides: Side, eager: bool = True) -> None:
    for side in sides:
        await stack.enter_async_context(
            Worker(
                side.client,
                task_queue=task_queue,
                workflows=[RetryingActivity, WaitsForSignal],
                activities=[always_fails, succeeds],
                identity=f"cli-daily-worker@{side.name}",
                disable_eager_activity_execution=not eager,
            )
        )


async def pending_activity(handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    described = await handle.describe()
    pending = described.raw_description.pending_activities
    if not pending:
        return None
    info = pending[0]
    return {"paused": info.paused, "attempt": info.attempt, "state": info.state}


TIME = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z$")


def normalise(value: Any, *, drop: frozenset[str] = frozenset()) -> Any:
    """JSON with times, durations, ids and per-server values replaced by placeholders."""
    if isinstance(value, dict):
        return {k: normalise(v, drop=drop) for k, v in sorted(value.items()) if k not in drop}
    if isinstance(value, list):
        return [normalise(v, drop=drop) for v in value]
    if isinstance(value, str):
        if TIME.match(value):
            return "<time>"
        if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value):
            return "<uuid>"
        if re.fullmatch(r"-?[\d.]+(e-?\d+)?s", value):
            return "<duration>"
    return value


# ---- task queues ------------------------------------------------------------------------
async def test_task_queue_describe_shows_pollers_and_stats(sides: tuple[Side, Side]) -> None:
    task_queue = unique("cli-tq")
    async with AsyncExitStack() as stack:
        await workers(stack, task_queue, *sides)
        for side in sides:
            handle = await side.client.start_workflow(
                WaitsForSignal.run, id=unique("tq-wf"), task_queue=task_queue
            )
            await handle.signal(WaitsForSignal.finish)
            assert await handle.result() == "finished"
        described = {}
        for side in sides:

            async def both_types_polled(side: Side = side) -> bool:
                output = await side.cli.json("task-queue", "describe", "--task-queue", task_queue)
                described[side.name] = output
                return {p["taskQueueType"] for p in output["pollers"] or []} == {
                    "workflow",
                    "activity",
                }

            await eventually(both_types_polled, f"pollers of both types on {side.name}")
        shapes = {}
        for name, output in described.items():
            pollers = sorted(
                (p["buildId"], p["taskQueueType"], p["identity"].split("@")[0], p["ratePerSecond"])
                for p in output["pollers"]
            )
            stats = sorted(
                (s["buildId"], s["taskQueueType"], s["approximateBacklogCount"], sorted(s))
                for s in output["stats"]
            )
            rates = sorted(
                (s["taskQueueType"], s["tasksAddRate"] > 0, s["tasksDispatchRate"] > 0)
                for s in output["stats"]
            )
            shapes[name] = (pollers, stats, output["reachability"], rates)
        assert shapes["aion"] == shapes["reference"]
        # The text form ("is my worker polling?") and the other selections work too.
        aion = sides[0].cli
        text = await aion.ok("task-queue", "describe", "--task-queue", task_queue)
        assert "Pollers:" in text and "cli-daily-worker@aion" in text
        for side in sides:
            reach = await side.cli.json(
                *("task-queue", "describe", "--task-queue", task_queue, "--report-reachability"),
                *("--select-build-id", "no-such-build", "--select-unversioned"),
            )
            described[side.name] = sorted(
                (r["buildId"], r["reachability"]) for r in reach["reachability"]
            )
        assert described["aion"] == described["reference"]
        legacy = await aion.json(
            "task-queue", "describe", "--task-queue", task_queue, "--legacy-mode"
        )
        assert [p["identity"] for p in legacy["pollers"]] == ["cli-daily-worker@aion"]


async def test_task_queue_list_partition(sides: tuple[Side, Side]) -> None:
    task_queue = unique("cli-partitions")
    listed = {}
    for side in sides:
        output = await side.cli.json("task-queue", "list-partition", "--task-queue", task_queue)
        listed[side.name] = {k: v[0]["key"] for k, v in output.items()}
    assert (
        listed["aion"]
        == listed["reference"]
        == {
            "activityTaskQueuePartitions": task_queue,
            "workflowTaskQueuePartitions": task_queue,
        }
    )
    assert "Workflow Task Queue Partitions" in await sides[0].cli.ok(
        "task-queue", "list-partition", "--task-queue", task_queue
    )


async def test_task_queue_config_set_and_get(sides: tuple[Side, Side]) -> None:
    task_queue = unique("cli-config")
    results: dict[str, list[Any]] = {}
    for side in sides:
        cli = side.cli
        queue = ("--task-queue", task_queue, "--task-queue-type", "activity")
        empty = await cli.ok("task-queue", "config", "get", *queue)
        refused = await cli.fails(
            *("task-queue", "config", "set", "--task-queue", task_queue),
            *("--task-queue-type", "workflow", "--queue-rps-limit", "5"),
        )
        set_output = await cli.json(
            *("task-queue", "config", "set", *queue, "--queue-rps-limit", "5"),
            *("--queue-rps-limit-reason", "slow", "--fairness-key-weight", "hi=2.0"),
        )
        await cli.ok("task-queue", "config", "set", *queue, "--fairness-key-rps-limit-default", "3")
        got = await cli.json("task-queue", "config", "get", *queue)
        await cli.ok("task-queue", "config", "set", *queue, "--queue-rps-limit", "default")
        unset = await cli.json("task-queue", "config", "get", *queue)
        drop = frozenset({"updateIdentity"})
        results[side.name] = [
            empty,
            refused,
            normalise(set_output, drop=drop),
            normalise(got, drop=drop),
            normalise(unset, drop=drop),
        ]
    assert results["aion"] == results["reference"]
    assert results["aion"][3]["queueRateLimit"]["rateLimit"] == {"requestsPerSecond": 5}


async def test_queue_rate_limit_holds_activities_back(sides: tuple[Side, Side]) -> None:
    """A queue rate limit of 0 dispatches nothing: the activity waits in the backlog (shown by
    describe) until the limit is lifted."""
    aion = sides[0]
    task_queue = unique("cli-limited")
    queue = ("--task-queue", task_queue, "--task-queue-type", "activity")
    await aion.cli.ok("task-queue", "config", "set", *queue, "--queue-rps-limit", "0")
    async with AsyncExitStack() as stack:
        await workers(stack, task_queue, aion, eager=False)  # eager ones skip matching
        handle = await aion.client.start_workflow(
            WaitsForSignal.run, id=unique("limited"), task_queue=task_queue
        )

        async def backlogged() -> bool:
            output = await aion.cli.json(
                "task-queue",
                "describe",
                "--task-queue",
                task_queue,
                "--task-queue-type",
                "activity",
            )
            return bool(output["stats"]) and output["stats"][0]["approximateBacklogCount"] == 1

        await eventually(backlogged, "the activity held in the backlog")
        assert await pending_activity(handle) == {"paused": False, "attempt": 1, "state": 1}
        await aion.cli.ok("task-queue", "config", "set", *queue, "--queue-rps-limit", "default")

        async def dispatched() -> bool:
            return await pending_activity(handle) is None

        await eventually(dispatched, "the activity dispatched once the limit is lifted")
        await handle.signal(WaitsForSignal.finish)
        assert await handle.result() == "finished"


# ---- workflows ----------------------------------------------------------------------------
async def test_workflow_reset_to_last_workflow_task(sides: tuple[Side, Side]) -> None:
    task_queue = unique("cli-reset")
    outputs = {}
    async with AsyncExitStack() as stack:
        await workers(stack, task_queue, *sides)
        for side in sides:
            workflow_id = unique("reset")
            handle = await side.client.start_workflow(
                WaitsForSignal.run, id=workflow_id, task_queue=task_queue
            )

            async def waiting(handle: WorkflowHandle[Any, Any] = handle) -> bool:
                events = [e async for e in handle.fetch_history_events()]
                return len(events) >= 10  # the activity done and its workflow task completed

            await eventually(waiting, "the workflow to wait for its signal")
            text = await side.cli.ok(
                *("workflow", "reset", "--type", "LastWorkflowTask", "-w", workflow_id),
                *("--reason", "cli test"),
            )
            outputs[side.name] = text.replace(workflow_id, "<id>")
            new_run = (await handle.describe()).run_id
            assert new_run != handle.result_run_id
            await side.client.get_workflow_handle(workflow_id).signal(WaitsForSignal.finish)
            assert await side.client.get_workflow_handle(workflow_id).result() == "finished"
    assert outputs["aion"] == outputs["reference"]
    assert "to event ID 10" in outputs["aion"]


async def test_workflow_describe_and_not_found(sides: tuple[Side, Side]) -> None:
    task_queue = unique("cli-describe")
    described = {}
    async with AsyncExitStack() as stack:
        await workers(stack, task_queue, *sides)
        for side in sides:
            handle = await side.client.start_workflow(
                WaitsForSignal.run, id=unique("describe"), task_queue=task_queue
            )

            async def waiting(handle: WorkflowHandle[Any, Any] = handle) -> bool:
                info = (await handle.describe()).raw_description.workflow_execution_info
                return info.history_length >= 10

            await eventually(waiting, "the workflow to wait for its signal")
            output = await side.cli.json("workflow", "describe", "-w", handle.id)
            info = output["workflowExecutionInfo"]
            assert int(info["historySizeBytes"]) > 0 and int(info["stateTransitionCount"]) > 0
            assert output["workflowExtendedInfo"]["originalStartTime"] == info["startTime"]
            described[side.name] = (
                sorted(output),
                sorted(output["workflowExtendedInfo"]),
                output["workflowExtendedInfo"]["runExpirationTime"],
                sorted(k for k in info if k in {"historySizeBytes", "stateTransitionCount"}),
            )
            await handle.signal(WaitsForSignal.finish)
            await handle.result()
    assert described["aion"] == described["reference"]

    errors = {}
    for side in sides:
        missing = unique("missing")
        errors[side.name] = [
            (await side.cli.fails(*command, "-w", missing)).replace(missing, "<id>")
            for command in (
                ("workflow", "describe"),
                ("workflow", "signal", "--name", "x"),
                ("workflow", "terminate"),
                ("workflow", "cancel"),
                ("workflow", "show"),
            )
        ]
        errors[side.name].append(
            (
                await side.cli.fails(
                    *("workflow", "describe", "-w", missing),
                    *("-r", "6e5a1e0c-8d7b-4bb8-a4c6-9b3c4a2e1f00"),
                )
            ).replace(missing, "<id>")
        )
    assert errors["aion"] == errors["reference"]
    assert "workflow not found for ID: <id>" in errors["aion"][0]


async def test_workflow_delete(sides: tuple[Side, Side]) -> None:
    """A running workflow is deleted (terminated first); then it is not found."""
    seen = {}
    for side in sides:
        workflow_id = unique("delete")
        await side.client.start_workflow("Idle", id=workflow_id, task_queue=unique("no-worker"))
        deleted = await side.cli.ok("workflow", "delete", "-w", workflow_id, "--yes")

        async def gone(side: Side = side, workflow_id: str = workflow_id) -> bool:
            done = await side.cli.run("workflow", "describe", "-w", workflow_id)
            return done.returncode != 0

        await eventually(gone, f"{workflow_id} deleted on {side.name}")
        missing = await side.cli.fails("workflow", "delete", "-w", workflow_id, "--yes")
        seen[side.name] = [
            text.replace(workflow_id, "<id>")
            for text in (
                deleted,
                missing,
                await side.cli.fails("workflow", "describe", "-w", workflow_id),
            )
        ]
    assert seen["aion"] == seen["reference"]
    assert "workflow not found for ID: <id>" in seen["aion"][2]


async def test_workflow_pause_and_unpause(sides: tuple[Side, Side]) -> None:
    task_queue = unique("cli-pause")
    answers = {}
    async with AsyncExitStack() as stack:
        await workers(stack, task_queue, *sides)
        for side in sides:
            handle = await side.client.start_workflow(
                WaitsForSignal.run, id=unique("pause"), task_queue=task_queue
            )
            answers[side.name] = [
                await side.cli.fails("workflow", "pause", "-w", handle.id, "--reason", "r"),
                await side.cli.fails("workflow", "unpause", "-w", handle.id),
            ]
            await handle.signal(WaitsForSignal.finish)
            await handle.result()
    assert answers["aion"] == answers["reference"]


# ---- activities ---------------------------------------------------------------------------
async def test_activity_pause_update_options_unpause_reset(sides: tuple[Side, Side]) -> None:
    task_queue = unique("cli-activity")
    seen: dict[str, list[Any]] = {}
    async with AsyncExitStack() as stack:
        await workers(stack, task_queue, *sides)
        for side in sides:
            cli = side.cli
            handle = await side.client.start_workflow(
                RetryingActivity.run, id=unique("activity"), task_queue=task_queue
            )
            target = ("-w", handle.id, "--activity-id", ACTIVITY_ID)

            async def retrying(handle: WorkflowHandle[Any, Any] = handle) -> bool:
                pending = await pending_activity(handle)
                return pending is not None and pending["attempt"] >= 2

            await eventually(retrying, f"the activity to retry on {side.name}")
            await cli.ok("activity", "pause", *target, "--reason", "maintenance")

            async def paused(handle: WorkflowHandle[Any, Any] = handle) -> bool:
                pending = await pending_activity(handle)
                return pending is not None and pending["paused"] and pending["state"] == 4

            await eventually(paused, f"the activity paused on {side.name}")
            updated = await cli.json(
                *("activity", "update-options", *target, "--heartbeat-timeout", "5s"),
                *("--retry-maximum-attempts", "50", "--task-queue", task_queue),
            )
            described = await cli.json("workflow", "describe", "-w", handle.id)
            pending = described["pendingActivities"][0]
            options = pending["activityOptions"]
            not_found = await cli.fails(
                "activity", "pause", "-w", handle.id, "--activity-id", "no-such-activity"
            )
            await cli.ok("activity", "unpause", *target)

            async def unpaused(handle: WorkflowHandle[Any, Any] = handle) -> bool:
                pending = await pending_activity(handle)
                return pending is not None and not pending["paused"]

            await eventually(unpaused, f"the activity unpaused on {side.name}")
            reset = await cli.json("activity", "reset", *target, "--keep-paused")
            restored = await cli.json(
                "activity", "update-options", *target, "--restore-original-options"
            )
            seen[side.name] = [
                updated,
                normalise(options),
                pending["pauseInfo"]["manual"],
                not_found,
                reset,
                restored,
            ]
            await handle.terminate("done")
    assert seen["aion"] == seen["reference"]
    assert seen["aion"][0]["HeartbeatTimeout"] == 5_000_000_000
    assert seen["aion"][5]["MaximumAttempts"] == 0  # the original policy: unlimited


# ---- batch operations ---------------------------------------------------------------------
JOB_ID = re.compile(r"Started batch for job ID: (\S+)")
BATCH_FORMS = [
    ("workflow", "signal", "--name", "finish"),
    ("workflow", "update-options", "--versioning-override-behavior", "auto_upgrade"),
    ("workflow", "cancel"),
    ("workflow", "reset", "--type", "FirstWorkflowTask", "--reason", "cli batch"),
    ("workflow", "delete"),
]


async def start_idle(side: Side, task_queue: str, count: int) -> None:
    """`count` workflows nobody works on (they stay running), listed once visible."""
    for i in range(count):
        await side.client.start_workflow("Idle", id=f"{task_queue}-{i}", task_queue=task_queue)
    await matching(side, f"TaskQueue='{task_queue}'", count)


async def matching(side: Side, query: str, count: int) -> None:
    async def listed() -> bool:
        return (await side.client.count_workflows(query)).count == count

    await eventually(listed, f"{count} workflows matching {query} on {side.name}")


async def batch(side: Side, *command: str) -> tuple[str, str, Any]:
    """Run a batch form of the CLI and wait for its job: (output without the job id, job id,
    the job's `batch describe -o json` once it is done)."""
    started = await side.cli.ok(*command, "--yes")
    match = JOB_ID.search(started)
    assert match, started
    job_id = match.group(1)
    described: list[Any] = []

    async def done() -> bool:
        output = await side.cli.json("batch", "describe", "--job-id", job_id)
        described[:] = [output]
        return bool(output["state"] != "BATCH_OPERATION_STATE_RUNNING")

    await eventually(done, f"batch {job_id} on {side.name}")
    return started.replace(job_id, "<job>"), job_id, described[0]


async def last_events(side: Side, task_queue: str, count: int) -> list[str]:
    """The last event type of each workflow of the queue (its current run)."""
    last = []
    for i in range(count):
        history = await side.client.get_workflow_handle(f"{task_queue}-{i}").fetch_history()
        last.append(event_type_pb2.EventType.Name(history.events[-1].event_type))
    return last


async def test_every_batch_form_by_query(sides: tuple[Side, Side]) -> None:
    """signal, update-options, cancel, reset and delete by query, one after another on the
    same workflows: each job's describe and what it did."""
    task_queue = unique("cli-batches")  # the same on both servers: their outputs name it
    query = f"TaskQueue='{task_queue}'"
    seen: dict[str, list[Any]] = {}
    for side in sides:
        await start_idle(side, task_queue, 2)
        steps: list[Any] = []
        for form in BATCH_FORMS:
            started, _, described = await batch(side, *form, "--query", query)
            effect: Any = None
            if form[1] != "delete":
                effect = await last_events(side, task_queue, 2)
            elif side.name == "aion":  # the reference deletes terminated runs some seconds later
                await matching(side, query, 0)
            steps.append((started, normalise(described, drop=frozenset({"jobId"})), effect))
        seen[side.name] = steps
    assert seen["aion"] == seen["reference"]
    assert [step[1]["completeOperationCount"] for step in seen["aion"]] == ["2"] * 4 + ["4"]


async def test_batch_terminate_describe_list_and_stop(sides: tuple[Side, Side]) -> None:
    outputs: dict[str, dict[str, Any]] = {}
    task_queue = unique("cli-batch")  # the same on both servers: their outputs name it
    for side in sides:
        await start_idle(side, task_queue, 3)
        query = f"TaskQueue='{task_queue}'"
        started, job_id, described = await batch(
            side, "workflow", "terminate", "--query", query, "--reason", "cli batch"
        )
        statuses = await side.client.count_workflows(f"{query} GROUP BY ExecutionStatus")
        text = await side.cli.ok("batch", "describe", "--job-id", job_id)
        assert re.search(r"CompletedCount\s+3/3", text), text
        listed = await side.cli.json("batch", "list")
        table = await side.cli.ok("batch", "list")
        assert job_id in table and "Completed" in table
        stop = await side.cli.run("batch", "terminate", "--job-id", job_id, "--reason", "x")
        missing = await side.cli.run("batch", "describe", "--job-id", "no-such-job")
        drop = frozenset({"jobId"})
        outputs[side.name] = {
            "start": started,
            "describe": normalise(described, drop=drop),
            "statuses": [(g.group_values, g.count) for g in statuses.groups],
            "list": normalise([row for row in listed if row["jobId"] == job_id], drop=drop),
            "stop": (stop.returncode, stop.stderr.strip().replace(job_id, "<job>")),
            "missing": (missing.returncode, missing.stderr.strip()),
        }
    for key, value in outputs["reference"].items():
        assert outputs["aion"][key] == value, (key, outputs["aion"][key], value)


# ---- cluster, namespaces and workers ------------------------------------------------------
async def test_operator_cluster_list_and_namespace_describe(sides: tuple[Side, Side]) -> None:
    clusters, namespaces = {}, {}
    for side in sides:
        listed = await side.cli.json("operator", "cluster", "list")
        drop = frozenset({"clusterId", "address", "httpAddress", "historyShardCount"})
        clusters[side.name] = [normalise(c, drop=drop) for c in listed]
        assert listed[0]["address"] == side.cli.address
        registered = unique("cli-ns")
        await side.cli.ok("operator", "namespace", "create", "-n", registered)
        namespaces[side.name] = [
            (await side.cli.json("operator", "namespace", "describe", "-n", name))[
                "replicationConfig"
            ]
            for name in ("default", registered)
        ]
    assert clusters["aion"] == clusters["reference"]
    assert namespaces["aion"] == namespaces["reference"]
    assert namespaces["aion"][1]["state"] == "REPLICATION_STATE_NORMAL"
    assert "active" in await sides[0].cli.ok("operator", "cluster", "list")


async def test_operator_namespace_delete(sides: tuple[Side, Side]) -> None:
    seen = {}
    for side in sides:
        name = unique("cli-doomed")
        await side.cli.ok("operator", "namespace", "create", "-n", name)
        deleted = await side.cli.ok("operator", "namespace", "delete", "-n", name, "--yes")
        gone = await side.cli.fails("operator", "namespace", "describe", "-n", name)
        again = await side.cli.fails("operator", "namespace", "delete", "-n", name, "--yes")
        # The reference's frontend still knows the old name for a while (its namespace cache):
        # its deletion workflow then fails with "namespace X is not found"; Aion answers at once
        # as for any unknown namespace, "Namespace X is not found.".
        assert f"{name} is not found" in again
        seen[side.name] = [text.replace(name, "<ns>") for text in (deleted, gone)]
    assert seen["aion"] == seen["reference"]
    assert "Namespace <ns> has been deleted" in seen["aion"][0]


async def test_worker_list_describe_and_count(sides: tuple[Side, Side]) -> None:
    task_queue = unique("cli-workers")
    seen = {}
    async with AsyncExitStack() as stack:
        await workers(stack, task_queue, *sides)
        for side in sides:
            query = ("--query", f"TaskQueue = '{task_queue}'")
            found: list[Any] = []

            async def listed(
                side: Side = side, found: list[Any] = found, query: tuple[str, str] = query
            ) -> bool:
                done = await side.cli.run("worker", "list", *query, "-o", "json")
                assert done.returncode == 0, done.stderr
                found[:] = json.loads(done.stdout)
                return bool(found)

            await eventually(listed, f"the worker's heartbeat on {side.name}")
            heartbeat = found[0]["workerHeartbeat"]
            key = heartbeat["workerInstanceKey"]
            described = await side.cli.json("worker", "describe", "--worker-instance-key", key)
            count = await side.cli.json("worker", "count", *query)
            text = await side.cli.ok("worker", "list", *query)
            missing = await side.cli.fails("worker", "describe", "--worker-instance-key", "nope")
            seen[side.name] = (
                len(found),
                heartbeat["taskQueue"] == task_queue,
                heartbeat["sdkName"],
                heartbeat["status"],
                described["workerHeartbeat"]["workerInstanceKey"] == key,
                count,
                key in text,
                missing,
            )
    assert seen["aion"] == seen["reference"]
