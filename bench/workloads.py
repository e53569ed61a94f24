"""Workflow and activity definitions shared by the bench client (run.py) and worker (worker.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

TIMER_SECONDS = 1.0
UPDATES_PER_WORKFLOW = 5  # accepted `add` updates per `update` workflow (plus one rejected)
ACTIVITY_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="bench_echo")
async def echo(value: int) -> int:
    """The cheapest possible activity: hand the input back."""
    return value


@workflow.defn(name="BenchNoop")
class NoopWorkflow:
    """Completes on its first workflow task."""

    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name="BenchOneActivity")
class OneActivityWorkflow:
    """Runs one activity."""

    @workflow.run
    async def run(self) -> int:
        return await workflow.execute_activity(echo, 1, start_to_close_timeout=ACTIVITY_TIMEOUT)


@workflow.defn(name="BenchTenActivities")
class TenActivitiesWorkflow:
    """Runs ten activities one after the other."""

    @workflow.run
    async def run(self) -> int:
        total = 0
        for i in range(10):
            total += await workflow.execute_activity(
                echo, i, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
        return total


@workflow.defn(name="BenchSignalQuery")
class SignalQueryWorkflow:
    """Waits for the `release` signal; the `released` query reports whether it arrived."""

    def __init__(self) -> None:
        self._released = False

    @workflow.run
    async def run(self) -> bool:
        await workflow.wait_condition(lambda: self._released)
        return self._released

    @workflow.signal
    def release(self) -> None:
        self._released = True

    @workflow.query
    def released(self) -> bool:
        return self._released


@workflow.defn(name="BenchTimer")
class TimerWorkflow:
    """Sleeps on a durable timer."""

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(TIMER_SECONDS)


@workflow.defn(name="BenchChild")
class ChildWorkflow:
    """Runs one child workflow (BenchNoop) and waits for it to complete."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_child_workflow(NoopWorkflow.run)


@workflow.defn(name="BenchUpdate")
class UpdateWorkflow:
    """Keeps a running total that `add` updates change; the `finish` update lets it complete.

    `add`'s validator rejects negative amounts, so a rejected update never reaches the handler
    (and, on a server that follows Temporal, leaves no trace in the history).
    """

    def __init__(self) -> None:
        self._total = 0
        self._finished = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._finished)
        return self._total

    @workflow.update
    def add(self, amount: int) -> int:
        self._total += amount
        return self._total

    @add.validator
    def validate_add(self, amount: int) -> None:
        if amount < 0:
            raise ValueError(f"amount must not be negative, got {amount}")

    @workflow.update
    def finish(self) -> int:
        self._finished = True
        return self._total


# bench/memory.py: how many BenchMemoryWait runs have done their first workflow task, and how
# many have completed, in this worker process (the bench runs workflows unsandboxed, so a module
# global is shared by all runs; replays after a cache eviction are not counted).
MEMORY_PROGRESS = {"first_tasks": 0, "completed": 0}


@workflow.defn(name="BenchMemoryWait")
class MemoryWaitWorkflow:
    """Waits for the `release` signal, counting itself in MEMORY_PROGRESS (bench/memory.py)."""

    def __init__(self) -> None:
        self._released = False

    @workflow.run
    async def run(self) -> None:
        if not workflow.unsafe.is_replaying():
            MEMORY_PROGRESS["first_tasks"] += 1
        await workflow.wait_condition(lambda: self._released)
        if not workflow.unsafe.is_replaying():
            MEMORY_PROGRESS["completed"] += 1

    @workflow.signal
    def release(self) -> None:
        self._released = True


# bench/failover.py: short bounds, so that an activity or workflow task started on the cluster
# that dies is retried soon on the one that takes over.
FAILOVER_ACTIVITY_TIMEOUT = timedelta(seconds=5)
FAILOVER_TIMER_SECONDS = 0.5


@workflow.defn(name="BenchFailover")
class FailoverWorkflow:
    """Takes the signals `s0`, `s1`, ... in order, each followed by an activity and a timer.

    A signal may arrive twice (a client that retried it elsewhere, or one re-applied after a
    conflict), so the values are kept as a set in arrival order."""

    def __init__(self) -> None:
        self._received: list[str] = []

    @workflow.run
    async def run(self, signals: int) -> list[str]:
        for i in range(signals):
            await workflow.wait_condition(lambda i=i: f"s{i}" in self._received)
            await workflow.execute_activity(
                echo, i, start_to_close_timeout=FAILOVER_ACTIVITY_TIMEOUT
            )
            await workflow.sleep(FAILOVER_TIMER_SECONDS)
        return self._received

    @workflow.signal
    def add(self, value: str) -> None:
        if value not in self._received:
            self._received.append(value)


WORKFLOWS = [
    NoopWorkflow,
    OneActivityWorkflow,
    TenActivitiesWorkflow,
    SignalQueryWorkflow,
    TimerWorkflow,
    UpdateWorkflow,
    ChildWorkflow,
    MemoryWaitWorkflow,
    FailoverWorkflow,
]
ACTIVITIES = [echo]
