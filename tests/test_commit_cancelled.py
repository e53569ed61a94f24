"""Tasks a commit made durable reach the queues: at once when the commit's caller is cancelled
meanwhile (a client's deadline, a peer gone), since the commit lands all the same; and, should
one be lost on its way all the same, with the next sweep of the shard."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from aion.common.timeutil import SECOND, now_ns
from aion.history.engine import SWEEP_GRACE_NS
from aion.history.mutable_state import MutableState
from aion.history.runs import RunOptions, build_run
from aion.server import AionServer, ServerConfig
from tests.servers import free_port


@pytest.fixture
async def server() -> AsyncIterator[AionServer]:
    server = AionServer(ServerConfig(port=free_port()))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _new_run(server: AionServer) -> MutableState:
    """A run of the default namespace on a task queue of its own, not committed yet."""
    ns = server.namespaces.get("default")
    options = RunOptions(
        namespace_id=ns.id,
        namespace=ns.name,
        failover_version=ns.failover_version,
        workflow_id=f"wf-{uuid.uuid4()}",
        workflow_type="Lost",
        task_queue=f"tq-{uuid.uuid4()}",
        request_id=str(uuid.uuid4()),
        run_timeout_ns=60 * SECOND,
        task_timeout_ns=10 * SECOND,
    )
    return build_run(server.engine.new_mutable_state, options, server.engine.clock())


async def test_a_cancelled_start_still_hands_its_first_workflow_task_on(
    server: AionServer,
) -> None:
    engine = server.engine
    ms = _new_run(server)
    ns, task_queue = ms.s.namespace_id, ms.s.task_queue
    starting = asyncio.create_task(engine.create_execution(ms, None))
    await asyncio.sleep(0)  # the commit is under way
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    key = (ns, ms.s.workflow_id, ms.s.run_id)
    assert (await engine.get_execution(key)).running, "the start was committed"
    assert engine.matching.backlog_count(ns, task_queue, "workflow") == 1


async def test_tasks_lost_on_their_way_are_found_by_the_sweep(server: AionServer) -> None:
    engine = server.engine
    ms = _new_run(server)
    ns, task_queue = ms.s.namespace_id, ms.s.task_queue
    await engine.create_execution(ms, None)
    shard_id = engine.shard_id_of(ns, ms.s.workflow_id)
    # Lost: the first workflow task taken by a poller that vanished, the run's timeout timer
    # forgotten.
    assert await engine.matching.poll(ns, task_queue, "workflow", 1) is not None
    engine.timers.discard_shard(shard_id)
    assert await engine.sweep_shard(shard_id) == 0, "not lost for long enough"

    engine.clock = lambda: now_ns() + 61 * SECOND + SWEEP_GRACE_NS
    assert await engine.sweep_shard(shard_id) == 2
    assert engine.matching.backlog_count(ns, task_queue, "workflow") == 1
    assert await engine.sweep_shard(shard_id) == 0, "handed on once"
