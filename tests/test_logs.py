"""`--log-format json`: every line a JSON object; lines about a workflow name it (namespace,
workflow id, run id) and, with tracing on, carry the trace and span ids of the SDK's trace."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from aion.config import ConfigError, settings
from tests.otlp import Receiver
from tests.servers import AionProcess
from tests.test_tracing import SdkSide, Waiting, shout


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def _json_lines(server: AionProcess) -> list[dict[str, Any]]:
    """The server's log lines (not the lines announcing its addresses), each parsed."""
    return [json.loads(line) for line in server.output if line.startswith("{")]


async def test_json_lines_carry_workflow_and_trace_ids(receiver: Receiver) -> None:
    sdk = SdkSide()
    workflow_id = f"logged-{uuid.uuid4()}"
    server = AionProcess(
        extra_args=["--log-format", "json", "--log-level", "debug"], env=receiver.env
    )
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address, interceptors=[sdk.interceptor])
        async with Worker(client, task_queue="logged", workflows=[Waiting], activities=[shout]):
            handle = await client.start_workflow(
                Waiting.run, "x", id=workflow_id, task_queue="logged"
            )
            await handle.signal(Waiting.finish)
            assert await handle.result() == "X"
    finally:
        await asyncio.to_thread(server.stop)
    lines = _json_lines(server)
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert line["time"].endswith("+00:00")
    ours = [line for line in lines if line.get("workflow_id") == workflow_id]
    assert ours, lines
    assert all(line["namespace"] == "default" for line in ours)
    assert all(line.get("run_id") in (None, handle.result_run_id) for line in ours)
    assert any(line.get("run_id") == handle.result_run_id for line in ours)
    # The line the start logged (its workflow task, queued) is in the SDK's trace.
    start = sdk.start_span(workflow_id).get_span_context()
    assert start is not None
    traced = [line for line in ours if line.get("trace_id") == f"{start.trace_id:032x}"]
    assert traced and all(len(line["span_id"]) == 16 for line in traced)


async def test_json_lines_without_tracing_have_no_trace_ids() -> None:
    workflow_id = f"untraced-{uuid.uuid4()}"
    server = AionProcess(extra_args=["--log-format", "json", "--log-level", "debug"])
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        async with Worker(client, task_queue="untraced", workflows=[Waiting], activities=[shout]):
            handle = await client.start_workflow(
                Waiting.run, "y", id=workflow_id, task_queue="untraced"
            )
            await handle.signal(Waiting.finish)
            assert await handle.result() == "Y"
    finally:
        await asyncio.to_thread(server.stop)
    lines = _json_lines(server)
    assert any(line.get("workflow_id") == workflow_id for line in lines)
    assert not any("trace_id" in line for line in lines)


async def test_text_stays_the_default() -> None:
    server = AionProcess(extra_args=["--log-level", "info"])
    await asyncio.to_thread(server.start)
    await asyncio.to_thread(server.stop)
    logged = [line for line in server.output if " INFO aion" in line]
    assert logged and not any(line.startswith("{") for line in server.output)


def test_log_format_setting() -> None:
    db = {"db_filename": "x.db"}
    assert settings(db, {}).log_format == "text"
    assert settings({**db, "log_format": "json"}, {}).log_format == "json"
    assert settings({**db, "log_format": "json"}, {"log_format": "text"}).log_format == "text"
    with pytest.raises(ConfigError, match="log_format"):
        settings({**db, "log_format": "xml"}, {})
    traced = settings({**db, "tracing": {"endpoint": "http://c:4317"}}, {})
    assert traced.server.tracing.endpoint == "http://c:4317"
    with pytest.raises(ConfigError, match="tracing.exporter"):
        settings({**db, "tracing": {"exporter": "zipkin"}}, {})
