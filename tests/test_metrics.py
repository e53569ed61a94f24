"""`GET /metrics` on the metrics port: Temporal's service metrics in the reference server's
Prometheus format (plain counter names, latency histograms in seconds with the reference's
buckets, `_unknown_` for calls without a namespace)."""

from __future__ import annotations

import asyncio
import re
import uuid

import aiohttp
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.helpers import Storage
from tests.servers import free_port

REFERENCE_BUCKETS = ["0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5"]
REFERENCE_BUCKETS += ["1", "2", "5", "10", "20", "50", "100", "200", "500", "1000", "+Inf"]
SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+)$")


async def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    samples = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match[2]))
        samples.append((match[1], labels, float(match[3])))
    return samples


def value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    found = [v for n, ls, v in samples if n == name and labels.items() <= ls.items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def test_service_metrics(storage: Storage) -> None:
    metrics_port = free_port()
    server = storage.server(extra_args=["--metrics-port", str(metrics_port)])
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        await client.start_workflow(
            "Nothing", id=f"metrics-{uuid.uuid4()}", task_queue=f"q-{uuid.uuid4()}"
        )
        with pytest.raises(RPCError):
            await client.get_workflow_handle("no-such-workflow").describe()
        samples = await scrape(metrics_port)
    finally:
        await asyncio.to_thread(server.stop)

    assert not [n for n, _, _ in samples if n.endswith(("_total", "_created"))]
    start = {"namespace": "default", "operation": "StartWorkflowExecution"}
    assert value(samples, "service_requests", service_name="frontend", **start) == 1
    assert value(samples, "service_latency_count", service_name="frontend", **start) == 1
    buckets = [
        ls["le"]
        for n, ls, _ in samples
        if n == "service_latency_bucket" and start.items() <= ls.items()
    ]
    assert buckets == REFERENCE_BUCKETS
    assert value(samples, "service_latency_bucket", le="+Inf", **start) == 1
    # A caller's mistake is an error with its type, not one of the server's failures.
    describe = {"namespace": "default", "operation": "DescribeWorkflowExecution"}
    assert value(samples, "service_error_with_type", **describe) == 1
    assert value(samples, "service_error_with_type", **describe, error_type="serviceerror_NotFound")
    assert value(samples, "service_errors", **describe) == 0
    assert value(samples, "action", action_type="grpc_StartWorkflowExecution", **start) == 1
    assert value(samples, "service_requests", namespace="_unknown_", operation="GetSystemInfo") >= 1
    assert value(samples, "build_information", service_name="frontend") == 1
