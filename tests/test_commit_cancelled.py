"""A transition whose caller is cancelled while its commit is in flight (a client's deadline, a
peer gone): the commit lands all the same, and what it made durable is handed on at once, not
left unseen until the shard is next loaded."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from aion.common.timeutil import SECOND
from aion.history.runs import RunOptions, build_run
from aion.server import AionServer, ServerConfig
from tests.servers import free_port


async def test_a_cancelled_start_still_hands_its_first_workflow_task_on() -> None:
    server = AionServer(ServerConfig(port=free_port()))
    await server.start()
    try:
        engine = server.engine
        ns = server.namespaces.get("default")
        task_queue = f"tq-{uuid.uuid4()}"
        options = RunOptions(
            namespace_id=ns.id,
            namespace=ns.name,
            failover_version=ns.failover_version,
            workflow_id=f"wf-{uuid.uuid4()}",
            workflow_type="Cancelled",
            task_queue=task_queue,
            request_id=str(uuid.uuid4()),
            run_timeout_ns=60 * SECOND,
            task_timeout_ns=10 * SECOND,
        )
        ms = build_run(engine.new_mutable_state, options, engine.clock())
        starting = asyncio.create_task(engine.create_execution(ms, None))
        await asyncio.sleep(0)  # the commit is under way
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        key = (ns.id, options.workflow_id, ms.s.run_id)
        assert (await engine.get_execution(key)).running, "the start was committed"
        assert engine.matching.backlog_count(ns.id, task_queue, "workflow") == 1
    finally:
        await server.stop()
