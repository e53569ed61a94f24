"""Task polls: take a task (here, or from another process) and start it on its shard.

A task or query stays with the process owning its execution's shard (a sticky queue counts as
served only on the process its worker polls: elsewhere its tasks go to the normal queue).
A poller that has waited a moment on its own process with nothing to take also polls one other
process (`poll_for_peer`
there, as a remote poller, which takes a task only when no poller of that process waits for
it); the other process starts what it takes and answers with the poll response, one call in
all. Whichever comes first is the poller's; a task taken here meanwhile goes back to its queue,
and the poll elsewhere is ended (`cancel_peer_poll`) before this process starts anything, so
that a task is never started for a poller that has gone. The answer to a query taken that way
goes back to the process awaiting it (`answer_query`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.codec import pack, unpack
from aion.common.tokens import TaskToken
from aion.history.api import cross_shard, query_workflow
from aion.history.engine import HistoryEngine
from aion.matching import QueryTask
from aion.persistence import QueueTask, StoreUnavailableError

# A poll on another process ends this much before the poller's own.
PEER_POLL_MARGIN_S = 0.5
# How long an ended poll on another process may take to answer (a task it started meanwhile).
PEER_CANCEL_WAIT_S = 5.0
ANSWER_TIMEOUT_S = 10.0
# Queries of other processes handed to pollers here, remembered until answered (the oldest
# forgotten past this).
MAX_PEER_QUERIES = 10_000

Start = Callable[[HistoryEngine, QueueTask, str, str], Awaitable[Message]]
START: dict[str, Start] = {
    "workflow": cross_shard.record_workflow_task_started,
    "activity": cross_shard.record_activity_task_started,
}
RESPONSES: dict[str, type[Message]] = {
    "workflow": rr.PollWorkflowTaskQueueResponse,
    "activity": rr.PollActivityTaskQueueResponse,
}


@dataclass(frozen=True)
class PollSpec:
    """What a poller asks for: its namespace, queue (and the normal queue of a sticky one),
    task kind, identity and worker deployment version."""

    namespace_id: str
    task_queue: str
    kind: str
    identity: str
    version: str = ""
    sticky_of: str = ""
    sticky: bool = False
    worker_rps: float | None = None  # the dispatch rate the worker asks for (activity polls)


@dataclass
class Started:
    """A task started for the poller: its response, and the task when it was taken here."""

    response: Message
    task: QueueTask | None = None


# What a poller can get: a task to start, a query, or a task another process started for it.
Taken = QueueTask | QueryTask | Started


async def poll_and_start(
    engine: HistoryEngine,
    take: Callable[[float], Awaitable[Taken | None]],
    kind: str,
    identity: str,
    timeout: float,
) -> Started | QueryTask | None:
    """Take tasks (`take(remaining)`) until one starts (stale ones are skipped); a query as it
    comes; None when the time is up."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while (remaining := until - loop.time()) > 0:
        task = await take(remaining)
        if task is None:
            return None
        if not isinstance(task, QueueTask):
            return task
        try:
            response = await START[kind](engine, task, identity, str(uuid.uuid4()))
        except errors.NotFound:
            continue  # stale: started elsewhere, or its execution moved on
        except (errors.Unavailable, StoreUnavailableError):
            engine.matching.retry_later(task)
            continue
        except errors.FailedPrecondition:
            engine.matching.requeue(task)
            if engine.namespaces.is_standby(task.namespace_id):
                return None  # failed over while this poll waited: the task stays queued
            raise
        except BaseException:
            # Not recorded (or recorded and then stale on redelivery): never lose the task.
            engine.matching.requeue(task)
            raise
        return Started(response, task)
    return None


async def take(engine: HistoryEngine, spec: PollSpec, timeout: float) -> Taken | None:
    """The next task for the poller, from this process or (after a moment with nothing here:
    `MatchingEngine.peer_poll_delay`) from another one; None when the time is up."""
    matching = engine.matching
    poll = matching.poll(
        spec.namespace_id,
        spec.task_queue,
        spec.kind,
        timeout,
        spec.identity,
        spec.version,
        spec.sticky_of,
        spec.worker_rps,
    )
    peers = engine.remote.peer_addresses()
    delay = matching.peer_poll_delay(spec.namespace_id, spec.task_queue, spec.kind)
    if not peers or spec.sticky or timeout <= delay + 2 * PEER_POLL_MARGIN_S:
        return await poll  # a sticky queue's tasks are where its worker polls
    local = asyncio.get_running_loop().create_task(poll)
    result: Taken | None = None
    elsewhere: asyncio.Task[Message | None] | None = None
    try:
        done, _ = await asyncio.wait({local}, timeout=delay)
        if not done:
            address, poll_id = random.choice(peers), str(uuid.uuid4())
            elsewhere = asyncio.get_running_loop().create_task(
                _poll_peer(engine, address, poll_id, spec, timeout - delay)
            )
            await asyncio.wait({local, elsewhere}, return_when=asyncio.FIRST_COMPLETED)
            if local.done() and not elsewhere.done():
                await _end_peer_poll(engine, address, poll_id, elsewhere)
            response = elsewhere.result() if elsewhere.done() else None
            matching.peer_polled(
                spec.namespace_id, spec.task_queue, spec.kind, response is not None
            )
            if response is not None:
                result = Started(response)
                return result
        result = await local
        return result
    finally:
        if result is None or isinstance(result, Started):
            _give_back_when_done(engine, spec, local)
        if elsewhere is not None and not elsewhere.done():
            elsewhere.cancel()


async def _poll_peer(
    engine: HistoryEngine, address: str, poll_id: str, spec: PollSpec, timeout: float
) -> Message | None:
    """A task started for the poller by the process at `address`; None when it had none (or
    could not be reached)."""
    args = {**dataclasses.asdict(spec), "poll_id": poll_id, "timeout": timeout - PEER_POLL_MARGIN_S}
    try:
        result = await engine.remote.invoke_at(address, "poll_for_peer", args, timeout)
    except errors.ServiceError:
        return None
    if "response" not in result:
        return None
    response = unpack(RESPONSES[spec.kind], result["response"])
    if isinstance(response, rr.PollWorkflowTaskQueueResponse) and response.HasField("query"):
        query_id = TaskToken.decode(response.task_token).query_task_id
        engine.peer_queries[query_id] = address
        if len(engine.peer_queries) > MAX_PEER_QUERIES:
            engine.peer_queries.popitem(last=False)
    return response


async def respond_query_task_completed(
    engine: HistoryEngine, req: rr.RespondQueryTaskCompletedRequest
) -> None:
    """A worker's answer to a query: to the query waiting here, or to the process whose
    query a poller here took."""
    query_id = TaskToken.decode(req.task_token).query_task_id
    address = engine.peer_queries.pop(query_id, None)
    if address is None:
        query_workflow.respond_query_task_completed(engine, req)
        return
    await engine.remote.invoke_at(address, "answer_query", {"request": pack(req)}, ANSWER_TIMEOUT_S)


async def _end_peer_poll(
    engine: HistoryEngine, address: str, poll_id: str, elsewhere: asyncio.Task[Message | None]
) -> None:
    """End the poll on another process and wait for its answer (a task it started already)."""
    with contextlib.suppress(errors.ServiceError):
        await engine.remote.invoke_at(
            address, "cancel_peer_poll", {"poll_id": poll_id}, PEER_CANCEL_WAIT_S
        )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(elsewhere), PEER_CANCEL_WAIT_S)


def _give_back_when_done(
    engine: HistoryEngine, spec: PollSpec, local: asyncio.Task[QueueTask | QueryTask | None]
) -> None:
    """The poller does not take what the local poll got: end it, and put back any task it got
    (now or as it ends)."""

    def give_back(done: asyncio.Task[QueueTask | QueryTask | None]) -> None:
        if not done.cancelled() and done.exception() is None and (task := done.result()):
            engine.matching.give_back(spec.namespace_id, spec.task_queue, task)

    local.cancel()
    local.add_done_callback(give_back)


async def _poll_for_peer_op(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    """For a poller waiting on another process: take a task here and start it."""
    spec = PollSpec(
        args["namespace_id"],
        args["task_queue"],
        args["kind"],
        args["identity"],
        args["version"],
        args["sticky_of"],
        args["sticky"],
        args["worker_rps"],
    )

    async def take_here(remaining: float) -> QueueTask | QueryTask | None:
        return await engine.matching.poll_for_peer(
            args["poll_id"],
            spec.namespace_id,
            spec.task_queue,
            spec.kind,
            remaining,
            spec.identity,
            spec.version,
            spec.sticky_of,
            spec.worker_rps,
        )

    started = await poll_and_start(engine, take_here, spec.kind, spec.identity, args["timeout"])
    if isinstance(started, QueryTask):
        query = started
        try:
            started = Started(await query_workflow.query_task_response(engine, query, spec.sticky))
        except BaseException:
            engine.matching.give_back(spec.namespace_id, spec.task_queue, query)
            raise
    return {} if started is None else {"response": pack(started.response)}


async def _cancel_peer_poll_op(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    engine.matching.cancel_peer_poll(args["poll_id"])
    return {}


async def _answer_query_op(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    request = unpack(rr.RespondQueryTaskCompletedRequest, args["request"])
    query_workflow.respond_query_task_completed(engine, request)
    return {}


OPS = {
    "poll_for_peer": _poll_for_peer_op,
    "cancel_peer_poll": _cancel_peer_poll_op,
    "answer_query": _answer_query_op,
}
