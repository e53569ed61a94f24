"""Matching: hands workflow, activity and query tasks to long-polling workers.

Workflow and activity tasks are already durable (written with the transition that created them);
matching keeps them in memory per task queue, gives each to one poller, and re-queues a task whose
poller went away before the history engine recorded it as started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from temporalio.api.query.v1 import message_pb2 as query_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb

from aion import metrics
from aion.common.quotas import TokenBucket
from aion.matching.rates import DISPATCH_DEFAULTS, QUEUE_DISPATCH_RATE, RateTracker
from aion.matching.workers import WorkerRegistry
from aion.persistence import QueueTask

log = logging.getLogger(__name__)

POLLER_HISTORY_NS = 5 * 60 * 1_000_000_000

RETRY_DELAY_S = 0.5

# Bounds of `_TaskQueue.peer_poll_delay`.
MIN_PEER_POLL_DELAY_S = 0.02
MAX_PEER_POLL_DELAY_S = 1.0

# Ids of peer polls cancelled before they arrived, kept to end them when they do.
MAX_CANCELLED_PEER_POLLS = 1000

# A sticky queue counts as served while a poller waits on it or polled within this window.
STICKY_POLLER_WINDOW_S = 10.0
DEFAULT_DISPATCH_RPS = DISPATCH_DEFAULTS[QUEUE_DISPATCH_RATE]


@dataclass
class QueryTask:
    """A legacy query task: in memory only; the caller waits on `result`."""

    namespace_id: str
    workflow_id: str
    run_id: str
    query: query_pb.WorkflowQuery
    result: asyncio.Future[object]
    task_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = ""  # the worker deployment version the workflow is pinned to


Task = QueueTask | QueryTask
TASK_TYPES = {"workflow": 1, "activity": 2}  # TaskQueueType WORKFLOW, ACTIVITY


class Routing(Protocol):
    """Which worker deployment version's pollers take a task (`aion.versioning`)."""

    def is_versioned(self, namespace_id: str, task_queue: str, task_type: int) -> bool: ...

    def route(
        self, namespace_id: str, task_queue: str, task_type: int, workflow_id: str, pinned: str
    ) -> str: ...


class _Unversioned:
    def is_versioned(self, namespace_id: str, task_queue: str, task_type: int) -> bool:
        return False

    def route(
        self, namespace_id: str, task_queue: str, task_type: int, workflow_id: str, pinned: str
    ) -> str:
        return ""


def _dispatch_bucket(rate: float) -> TokenBucket:
    return TokenBucket(rate, max(1.0, rate))  # a second's worth of burst, as the reference


@dataclass
class _TaskQueue:
    # Whose metrics: (namespace name, task queue name, kind, sticky); a sticky queue's metrics
    # carry its normal queue's name, learnt from its first poll.
    labels: tuple[str, str, str, bool]
    metrics: metrics.QueueMetrics
    # Returns the version whose pollers take a task; None while no version serves the queue.
    target: Callable[[Task], str] | None = None
    backlog: deque[QueueTask] = field(default_factory=deque)
    # (shard id, task id) of each task in the backlog, with when it was parked (monotonic).
    queued: dict[tuple[int, int], float] = field(default_factory=dict)
    queries: deque[QueryTask] = field(default_factory=deque)
    # Woken when a query waits here (`MatchingEngine.wait_for_query`).
    query_waiters: list[asyncio.Future[None]] = field(default_factory=list)
    # Waiting pollers: (future, version, remote); a remote one waits here for another process.
    pollers: deque[tuple[asyncio.Future[Task], str, bool]] = field(default_factory=deque)
    last_poll: float = 0.0
    shut_down: bool = False
    pollers_seen: dict[str, int] = field(default_factory=dict)  # identity -> last poll (ns)
    poller_versions: dict[str, str] = field(default_factory=dict)  # identity -> its version
    added: RateTracker = field(default_factory=RateTracker)  # new tasks
    dispatched: RateTracker = field(default_factory=RateTracker)  # tasks handed to pollers
    held_back: RateTracker = field(default_factory=RateTracker)  # dispatches the limit delayed
    # Dispatches are spaced at the queue's rate: UpdateTaskQueueConfig's queue rate limit if
    # set, else the one its workers poll with, capped by the system's for the queue.
    system_rps: float = DEFAULT_DISPATCH_RPS
    api_rps: float | None = None
    worker_rps: float | None = None
    limiter: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = _dispatch_bucket(self._effective_rps())

    def _effective_rps(self) -> float:
        chosen = self.api_rps if self.api_rps is not None else self.worker_rps
        return self.system_rps if chosen is None else min(chosen, self.system_rps)

    def apply_rates(self) -> None:
        """Space dispatches at the effective rate from now on."""
        rate = self._effective_rps()
        if self.limiter.rate != rate:
            self.limiter = _dispatch_bucket(rate)

    # How long a poller here waits with nothing before it polls another process too: short
    # while those polls bring tasks, doubled by each that brings none (`peer_polled`).
    peer_poll_delay: float = MIN_PEER_POLL_DELAY_S

    def _may_dispatch(self) -> bool:
        if self.limiter.allow():
            return True
        self.held_back.inc()
        return False

    def take(self, version: str = "") -> Task | None:
        """The next task for a poller of `version` ("" = unversioned)."""
        target = self.target
        if target is None:
            if self.queries:
                return self.queries.popleft()
            if self.backlog and self._may_dispatch():
                return self._unpark(self.backlog.popleft())
            return None
        for query in self.queries:
            if target(query) == version:
                self.queries.remove(query)
                return query
        for task in self.backlog:
            if target(task) == version:
                if not self._may_dispatch():
                    return None
                self.backlog.remove(task)
                return self._unpark(task)
        return None

    def _unpark(self, task: QueueTask) -> QueueTask:
        parked = self.queued.pop((task.shard_id, task.task_id), None)
        if parked is not None:
            self.metrics.poll_success.inc()
            self.metrics.asyncmatch_latency.observe(time.monotonic() - parked)
        return task

    def park(self, task: QueueTask, front: bool = False) -> bool:
        """Put a task in the backlog unless it is there already; False when it was."""
        key = (task.shard_id, task.task_id)
        if key in self.queued:
            return False
        self.queued[key] = time.monotonic()
        if front:
            self.backlog.appendleft(task)
        else:
            self.backlog.append(task)
        return True

    def offer(self, task: Task) -> bool:
        """Sync match: hand the task to a waiting poller (of its version) if there is one, a
        poller of this process before one waiting here for another process (whose worker
        would then answer through that process)."""
        version = self.target(task) if self.target is not None else None
        limited = isinstance(task, QueueTask)
        entries = sorted(self.pollers, key=lambda entry: entry[2])  # stable: local ones first
        for entry in entries:
            poller, poller_version, _ = entry
            if poller.done():
                self.pollers.remove(entry)
            elif version is None or poller_version == version:
                if limited and not self._may_dispatch():
                    return False  # rate-limited: a poller takes it from the backlog later
                self.pollers.remove(entry)
                poller.set_result(task)
                self.metrics.poll_success.inc()
                self.metrics.poll_success_sync.inc()
                self.metrics.syncmatch_latency.observe(0.0)  # handed over in the add itself
                return True
        return False

    def rematch(self) -> None:
        """Routing changed: give waiting pollers the backlog tasks now routed to them."""
        for entry in list(self.pollers):
            poller, version, _ = entry
            if poller.done():
                continue
            task = self.take(version)
            if task is not None:
                self.pollers.remove(entry)
                poller.set_result(task)


class MatchingEngine:
    """All task queues of this process, keyed by (namespace id, queue name, kind)."""

    def __init__(
        self,
        routing: Routing | None = None,
        dispatch_rps: Callable[[str, str, str], float] | None = None,
    ) -> None:
        """`routing` picks the worker deployment version of a task (none by default);
        `dispatch_rps` says how many tasks a second a queue (namespace id, name, kind) may
        dispatch at most (`aion.matching.rates.system_dispatch_rps`)."""
        self.dispatch_rps = dispatch_rps or (lambda namespace_id, name, kind: DEFAULT_DISPATCH_RPS)
        self._queues: dict[tuple[str, str, str], _TaskQueue] = {}
        # Polls waiting here for other processes' pollers, by poll id (`poll_for_peer`), and
        # the ids of those cancelled before they arrived.
        self._peer_polls: dict[str, asyncio.Task[Task | None]] = {}
        self._cancelled_peer_polls: OrderedDict[str, None] = OrderedDict()
        self.routing: Routing = routing or _Unversioned()
        self._version_polls: dict[tuple[str, str], int] = {}  # (namespace, version) -> last poll
        # UpdateTaskQueueConfig's settings by (namespace id, queue, kind): in this process only.
        self._configs: dict[tuple[str, str, str], taskqueue_pb.TaskQueueConfig] = {}
        self.workers = WorkerRegistry()  # the workers' heartbeats (RecordWorkerHeartbeat)

    def _queue(self, namespace_id: str, name: str, kind: str, sticky_of: str = "") -> _TaskQueue:
        """The task queue; `sticky_of` names the normal queue of a sticky one, whose metrics
        count under the normal queue's name, in the sticky partition."""
        key = (namespace_id, name, kind)
        queue = self._queues.get(key)
        if queue is None:
            labels = (
                metrics.namespace_name(namespace_id),
                sticky_of or name,
                kind,
                bool(sticky_of),
            )
            queue = self._queues[key] = _TaskQueue(
                labels,
                metrics.task_queue(*labels),
                system_rps=self.dispatch_rps(namespace_id, name, kind),
            )
            self._route(queue, namespace_id, name, kind)
        elif sticky_of and not queue.labels[3]:  # created by a task, before its first poll
            queue.labels = (queue.labels[0], sticky_of, kind, True)
            queue.metrics = metrics.task_queue(*queue.labels)
        return queue

    def backlog_gauges(self) -> Iterator[tuple[tuple[str, ...], float, float]]:
        """Per task queue: the metric labels of `approximate_backlog_count` and
        `approximate_backlog_age_seconds` (without the priority), its size and its oldest
        task's age."""
        now = time.monotonic()
        for queue in self._queues.values():
            namespace, name, kind, sticky = queue.labels
            partition = metrics.STICKY_PARTITION if sticky else "0"
            oldest = min(queue.queued.values(), default=now)
            labels: tuple[str, ...] = (
                namespace,
                metrics.ACTIVE,
                "TaskQueuePartitionManager",
                partition,
                "matching",
            )
            labels = (*labels, metrics.TASK_TYPES[kind], name, "", "", metrics.UNVERSIONED)
            yield labels, len(queue.backlog), now - oldest

    def _route(self, queue: _TaskQueue, namespace_id: str, name: str, kind: str) -> None:
        task_type = TASK_TYPES[kind]
        if not self.routing.is_versioned(namespace_id, name, task_type):
            queue.target = None
            return
        route = self.routing.route

        def target(task: Task) -> str:
            return route(namespace_id, name, task_type, task.workflow_id, task.version)

        queue.target = target

    def routing_changed(self, namespace_id: str) -> None:
        """Worker deployments of the namespace changed: re-route its queues' waiting work."""
        for (ns, name, kind), queue in self._queues.items():
            if ns == namespace_id:
                self._route(queue, ns, name, kind)
                queue.rematch()

    def add_task(self, task: QueueTask) -> bool:
        """Give the task to a waiting poller (True) or queue it in the backlog (False)."""
        log.debug("queue task %s %s for %s", task.task_id, task.kind, task.workflow_id)
        queue = self._queue(task.namespace_id, task.task_queue, task.kind)
        queue.added.inc()
        if queue.offer(task):
            return True
        queue.park(task)
        return False

    def holds(self, task: QueueTask) -> bool:
        """Whether the task waits in its queue's backlog here."""
        queue = self._queues.get((task.namespace_id, task.task_queue, task.kind))
        return queue is not None and (task.shard_id, task.task_id) in queue.queued

    def requeue(self, task: QueueTask) -> None:
        """Put back a task whose poller vanished before it was recorded as started."""
        queue = self._queue(task.namespace_id, task.task_queue, task.kind)
        if not queue.offer(task):
            queue.park(task, front=True)

    def give_back(self, namespace_id: str, task_queue: str, task: Task) -> None:
        """Put back a task a poller took but will not start (it got another one)."""
        if isinstance(task, QueueTask):
            self.requeue(task)
            return
        queue = self._queue(namespace_id, task_queue, "workflow")
        if not queue.offer(task):
            queue.queries.appendleft(task)

    def retry_later(self, task: QueueTask) -> None:
        """Offer a task again shortly: its execution's shard could not be reached (its owner
        died, or ownership is moving) and only the new owner can start it."""
        asyncio.get_running_loop().call_later(RETRY_DELAY_S, self.add_task, task)

    def add_query(self, namespace_id: str, task_queue: str, task: QueryTask) -> None:
        queue = self._queue(namespace_id, task_queue, "workflow")
        if not queue.offer(task):
            queue.queries.append(task)
            for waiter in queue.query_waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait_for_query(self, namespace_id: str, task_queue: str, timeout: float) -> bool:
        """Wait up to `timeout` seconds until a query waits on the workflow queue `task_queue`;
        whether one does (a poll held on a standby cluster takes queries, as Temporal's do)."""
        queue = self._queue(namespace_id, task_queue, "workflow")
        if queue.queries:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.query_waiters.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            queue.query_waiters.remove(waiter)
        return bool(queue.queries)

    def remove_query(self, namespace_id: str, task_queue: str, task: QueryTask) -> None:
        queue = self._queue(namespace_id, task_queue, "workflow")
        if task in queue.queries:
            queue.queries.remove(task)

    async def poll(
        self,
        namespace_id: str,
        name: str,
        kind: str,
        timeout: float,
        identity: str = "",
        version: str = "",
        sticky_of: str = "",
        worker_rps: float | None = None,
        remote: bool = False,
    ) -> Task | None:
        """Wait up to `timeout` seconds for a task routed to `version` ("" = an unversioned
        poller); None when none arrived. `sticky_of` names the normal queue of a sticky one;
        `worker_rps` is the dispatch rate the poller asks for (None: none), which the queue
        follows unless UpdateTaskQueueConfig set one, as the reference does; `remote`: the
        poller waits here for another process (`offer`), and does not keep a sticky queue
        alive here (its worker answers through the other process)."""
        queue = self._queue(namespace_id, name, kind, sticky_of)
        if queue.worker_rps != worker_rps:
            queue.worker_rps = worker_rps
            queue.apply_rates()
        queue.shut_down = False
        queue.pollers_seen[identity] = time.time_ns()
        queue.poller_versions[identity] = version
        if version:
            self._version_polls[(namespace_id, version)] = time.time_ns()
        if not remote:
            queue.last_poll = time.monotonic()
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while True:
            task = queue.take(version)
            if task is None:
                task = await self._wait(queue, version, remote, until)
            if task is not None:
                if isinstance(task, QueueTask):
                    queue.dispatched.inc()
                return task
            if loop.time() >= until:
                queue.metrics.poll_timeouts.inc()
                return None

    async def _wait(
        self, queue: _TaskQueue, version: str, remote: bool, until: float
    ) -> Task | None:
        """Wait as a poller until `until`, or until a rate-limited backlog may dispatch again."""
        loop = asyncio.get_running_loop()
        timeout = max(0.0, until - loop.time())
        if queue.backlog and (held_back_s := queue.limiter.wait_s()) > 0:
            timeout = min(timeout, max(held_back_s, 0.01))
        poller: asyncio.Future[Task] = loop.create_future()
        entry = (poller, version, remote)
        queue.pollers.append(entry)
        try:
            return await asyncio.wait_for(asyncio.shield(poller), timeout)
        except (TimeoutError, asyncio.CancelledError) as e:
            if poller.done() and not poller.cancelled():
                # A task was handed over just as the poll ended: do not lose it.
                task = poller.result()
                if isinstance(task, QueueTask):
                    self.requeue(task)
                elif not queue.offer(task):
                    queue.queries.appendleft(task)
            else:
                poller.cancel()
            if isinstance(e, asyncio.CancelledError):
                raise
            return None
        finally:
            if not remote:
                queue.last_poll = time.monotonic()
            if entry in queue.pollers:
                queue.pollers.remove(entry)

    async def poll_for_peer(
        self,
        poll_id: str,
        namespace_id: str,
        name: str,
        kind: str,
        timeout: float,
        identity: str,
        version: str,
        sticky_of: str,
        worker_rps: float | None = None,
    ) -> Task | None:
        """`poll` for a poller waiting on another process, as a remote poller; None when its
        time is up or `cancel_peer_poll` ended it first."""
        if poll_id in self._cancelled_peer_polls:
            del self._cancelled_peer_polls[poll_id]
            return None
        waiting = asyncio.get_running_loop().create_task(
            self.poll(
                namespace_id, name, kind, timeout, identity, version, sticky_of, worker_rps, True
            )
        )
        self._peer_polls[poll_id] = waiting
        try:
            return await waiting
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return None  # cancelled by `cancel_peer_poll`
        finally:
            self._peer_polls.pop(poll_id, None)

    def peer_poll_delay(self, namespace_id: str, name: str, kind: str) -> float:
        """How long a poller of the queue waits here before it polls another process too."""
        return self._queue(namespace_id, name, kind).peer_poll_delay

    def peer_polled(self, namespace_id: str, name: str, kind: str, fruitful: bool) -> None:
        """A poll of another process for the queue brought a task (or did not)."""
        queue = self._queue(namespace_id, name, kind)
        delay = MIN_PEER_POLL_DELAY_S if fruitful else 2 * queue.peer_poll_delay
        queue.peer_poll_delay = min(delay, MAX_PEER_POLL_DELAY_S)

    def cancel_peer_poll(self, poll_id: str) -> None:
        """End a `poll_for_peer` unless it has taken a task already (or it has not arrived)."""
        waiting = self._peer_polls.get(poll_id)
        if waiting is not None:
            waiting.cancel()
            return
        self._cancelled_peer_polls[poll_id] = None
        if len(self._cancelled_peer_polls) > MAX_CANCELLED_PEER_POLLS:
            self._cancelled_peer_polls.popitem(last=False)

    def has_live_poller(self, namespace_id: str, name: str) -> bool:
        queue = self._queues.get((namespace_id, name, "workflow"))
        if queue is None or queue.shut_down:
            return False
        if any(not p.done() and not remote for p, _, remote in queue.pollers):
            return True
        return time.monotonic() - queue.last_poll < STICKY_POLLER_WINDOW_S

    def shut_down_sticky(self, namespace_id: str, name: str) -> list[QueueTask]:
        """A worker left: its sticky queue serves no one; returns the tasks it still held."""
        queue = self._queue(namespace_id, name, "workflow")
        queue.shut_down = True
        tasks = list(queue.backlog)
        queue.backlog.clear()
        queue.queued.clear()
        for poller, _, _ in queue.pollers:
            poller.cancel()
        return tasks

    def last_poll_ns(self, namespace_id: str, version: str) -> int:
        """When a poller of the worker deployment version last polled here (0: never)."""
        return self._version_polls.get((namespace_id, version), 0)

    def backlog_count(self, namespace_id: str, name: str, kind: str) -> int:
        queue = self._queues.get((namespace_id, name, kind))
        return len(queue.backlog) if queue else 0

    def pollers(self, namespace_id: str, name: str, kind: str) -> list[tuple[str, int, str]]:
        """(identity, last poll in ns, worker deployment version or "") of the pollers seen
        within the last minutes, by identity."""
        queue = self._queues.get((namespace_id, name, kind))
        if queue is None:
            return []
        horizon = time.time_ns() - POLLER_HISTORY_NS
        return sorted(
            (who, at, queue.poller_versions.get(who, ""))
            for who, at in queue.pollers_seen.items()
            if at >= horizon
        )

    def stats(self, namespace_id: str, name: str, kind: str) -> taskqueue_pb.TaskQueueStats:
        """Backlog count and age, and the add and dispatch rates of the last 30 s."""
        stats = taskqueue_pb.TaskQueueStats()
        queue = self._queues.get((namespace_id, name, kind))
        if queue is None:
            return stats
        stats.approximate_backlog_count = len(queue.backlog)
        if queue.queued:
            age_s = time.monotonic() - min(queue.queued.values())
            stats.approximate_backlog_age.FromNanoseconds(int(age_s * 1e9))
        else:
            stats.approximate_backlog_age.SetInParent()
        added, dispatched = queue.added.rate(), queue.dispatched.rate()
        stats.tasks_add_rate = added
        stats.tasks_dispatch_rate = dispatched  # the CLI shows their difference as the increase
        stats.rate_limiting_active = queue.held_back.rate() > 0  # as the reference: of late
        return stats

    def config(
        self, namespace_id: str, name: str, kind: str
    ) -> taskqueue_pb.TaskQueueConfig | None:
        """The queue's UpdateTaskQueueConfig settings (None when never set)."""
        return self._configs.get((namespace_id, name, kind))

    def set_config(
        self, namespace_id: str, name: str, kind: str, config: taskqueue_pb.TaskQueueConfig
    ) -> None:
        """Keep the queue's settings; its queue rate limit spaces dispatches from now on."""
        key = (namespace_id, name, kind)
        self._configs[key] = config
        queue = self._queue(namespace_id, name, kind)
        if config.HasField("queue_rate_limit") and config.queue_rate_limit.HasField("rate_limit"):
            queue.api_rps = config.queue_rate_limit.rate_limit.requests_per_second
        else:
            queue.api_rps = None
        queue.apply_rates()
        queue.rematch()  # waiting pollers take what the new limit lets through

    def recent_pollers(self, namespace_id: str, name: str, kind: str) -> dict[str, int]:
        """Identities that polled within the last minutes, with their last poll time (ns)."""
        queue = self._queues.get((namespace_id, name, kind))
        if queue is None:
            return {}
        horizon = time.time_ns() - POLLER_HISTORY_NS
        return {who: at for who, at in queue.pollers_seen.items() if at >= horizon}
