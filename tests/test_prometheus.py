"""Issue 14, acceptance 1: a real Prometheus scrapes Aion while the mixed workload runs, and the
PromQL that Temporal's dashboards are built on returns data: the sync match rate per task queue,
service latency p95 by operation, persistence latency, workflow outcomes by workflow type and
the task queue backlog; and every query of the Grafana dashboard in docs/dashboards/ evaluates,
with data unless it reads what the workload never causes.

Prometheus is the Debian package `prometheus` (`.ci/run` installs it). Without it the test skips,
unless AION_REQUIRE_PROMETHEUS is set (as `.ci/run` does): then it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio.client import Client

from tests import dashboards
from tests.helpers import Storage
from tests.metrics_workload import run_workload
from tests.servers import free_port

READY_TIMEOUT_S = 30.0
QUERY_TIMEOUT_S = 60.0  # rate() over [1m] needs two scrapes after an increase: a few seconds
POLL_S = 0.5
STOP_TIMEOUT_S = 15.0

Row = tuple[dict[str, str], float]  # a result of an instant query: labels, value


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        reason = "Prometheus is not installed (Debian package `prometheus`; .ci/run installs it)"
        if os.environ.get("AION_REQUIRE_PROMETHEUS"):
            pytest.fail(reason + ", and AION_REQUIRE_PROMETHEUS is set")
        pytest.skip(reason)
    return binary


@dataclass
class Prometheus:
    """A Prometheus server on a free port scraping `target` every second, its data in `data`."""

    binary: str
    target: str
    data: Path
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        config = self.data / "prometheus.yml"  # JSON is YAML
        scrape = {"job_name": "aion", "scrape_interval": "1s", "scrape_timeout": "1s"}
        scrape["static_configs"] = [{"targets": [self.target]}]  # type: ignore[assignment]
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [scrape],
                }
            )
        )
        log = (self.data / "prometheus.log").open("wb")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        ready = await poll(self._ready, READY_TIMEOUT_S)
        if not ready:
            await self.stop()
            raise RuntimeError(f"prometheus did not start:\n{self.log()}")

    async def _ready(self) -> bool | None:
        if self.proc is not None and self.proc.returncode is not None:
            raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{self.url}/-/ready") as response,
            ):
                return response.status == 200 or None
        except aiohttp.ClientConnectionError:
            return None

    def log(self) -> str:
        path = self.data / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    async def stop(self) -> None:
        """SIGTERM to its pid; SIGKILL if it has not exited in STOP_TIMEOUT_S."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def targets(self) -> list[dict[str, Any]]:
        """The scrape targets' health and last error (to explain a target never scraped)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/targets") as response,
        ):
            body = await response.json()
        keys = ("scrapeUrl", "health", "lastError", "lastScrapeDuration")
        return [{k: t.get(k) for k in keys} for t in body["data"]["activeTargets"]]

    async def query(self, promql: str) -> list[Row]:
        """An instant query through the HTTP API: each series' labels and value."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/query", params={"query": promql}) as response,
        ):
            body = await response.json()
        assert body["status"] == "success", body
        assert body["data"]["resultType"] == "vector", body
        return [(row["metric"], float(row["value"][1])) for row in body["data"]["result"]]


async def poll(check: Callable[[], Awaitable[Any]], timeout: float) -> Any:
    """Await `check()` every POLL_S until it returns something other than None, or `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result is not None or loop.time() > deadline:
            return result
        await asyncio.sleep(POLL_S)


@contextlib.asynccontextmanager
async def steady_load(client: Client, task_queue: str) -> AsyncIterator[None]:
    """Keep running the workload on `task_queue` while Prometheus scrapes. A series Prometheus
    sees for the first time has no increase yet, so the rates over the last minute come from
    the rounds run after the first one."""

    async def load() -> None:
        while True:
            await run_workload(client, task_queue, rounds=1)

    running = asyncio.create_task(load())
    try:
        yield
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


def finite_operations(rows: list[Row]) -> set[str]:
    return {labels["operation"] for labels, value in rows if math.isfinite(value)}


def finite_or_nan(rows: list[Row]) -> bool:
    """A quantile over a window without requests is NaN (0/0); anything else must be a number."""
    return all(math.isfinite(value) or math.isnan(value) for _, value in rows)


# What every round of the workload does, so the rates of the last minute cover them.
SERVICE_OPERATIONS = {
    "StartWorkflowExecution", "SignalWorkflowExecution", "QueryWorkflow",
    "UpdateWorkflowExecution", "TerminateWorkflowExecution", "RequestCancelWorkflowExecution",
    "PollWorkflowTaskQueue", "RespondWorkflowTaskCompleted", "PollActivityTaskQueue",
    "RespondActivityTaskCompleted", "RespondActivityTaskFailed", "GetWorkflowExecutionHistory",
}  # fmt: skip
PERSISTENCE_OPERATIONS = {"CreateWorkflowExecution", "UpdateWorkflowExecution", "ReadHistoryBranch"}
WORKFLOW_TYPES = {"MetricsMixed", "MetricsChild", "MetricsContinues"}

# What the workload may not cause within the last minute: throttled calls, a shard let go, a
# failed call (the only ones it makes are the long polls cancelled when a worker stops).
MAY_BE_EMPTY = {
    "service_errors_resource_exhausted",
    "sharditem_removed_count",
    "service_error_with_type",
}

QUERIES = {
    # Temporal's sync match rate, per task queue.
    "sync_match_rate": "sum by (taskqueue) (rate(poll_success_sync[1m]))"
    " / sum by (taskqueue) (rate(poll_success[1m]))",
    "service_p95": "histogram_quantile(0.95, sum by (operation, le) (rate(service_latency_bucket[1m])))",
    "persistence_p95": "histogram_quantile(0.95,"
    " sum by (operation, le) (rate(persistence_latency_bucket[1m])))",
    "workflow_success": "sum by (workflowType) (workflow_success)",
    "backlog_count": 'approximate_backlog_count{taskqueue="$taskqueue"}',
    "backlog_age": 'approximate_backlog_age_seconds{taskqueue="$taskqueue"}',
}
# The rows each query must have before the test reads it.
READY: dict[str, Callable[[list[Row], str], bool]] = {
    "sync_match_rate": lambda rows, tq: any(
        labels.get("taskqueue") == tq and value > 0 for labels, value in rows
    ),
    "service_p95": lambda rows, _: finite_operations(rows) >= SERVICE_OPERATIONS,
    "persistence_p95": lambda rows, _: finite_operations(rows) >= PERSISTENCE_OPERATIONS,
    # Both rounds of run_workload counted: the last scrape may predate the second's end.
    "workflow_success": lambda rows, _: (
        {ls["workflowType"] for ls, v in rows if v >= 2} >= WORKFLOW_TYPES
    ),
    "backlog_count": lambda rows, _: bool(rows),
    "backlog_age": lambda rows, _: bool(rows),
}


async def test_prometheus_scrapes_aion(storage: Storage, tmp_path: Path) -> None:
    binary = prometheus_binary()
    metrics_port = free_port()
    server = storage.server(extra_args=["--metrics-port", str(metrics_port)])
    await asyncio.to_thread(server.start)
    prometheus = Prometheus(binary, f"127.0.0.1:{metrics_port}", tmp_path / "prometheus")
    try:
        await prometheus.start()

        async def scraped() -> bool | None:
            return any(value == 1 for _, value in await prometheus.query('up{job="aion"}')) or None

        if not await poll(scraped, QUERY_TIMEOUT_S):
            raise AssertionError(
                f"no scrape of Aion: targets {await prometheus.targets()}\n"
                f"Aion's output:\n{''.join(server.output[-40:])}\n"
                f"Prometheus's log:\n{prometheus.log()}"
            )

        # Letters, digits and `_` only: Aion writes any other character of a label value as `_`.
        task_queue = f"prom_{uuid.uuid4().hex}"
        client = await Client.connect(server.address)
        await run_workload(client, task_queue)
        async with steady_load(client, task_queue):
            results = await query_until_data(prometheus, task_queue)
            panels = await dashboard_queries(prometheus, task_queue)
    finally:
        await prometheus.stop()
        await asyncio.to_thread(server.stop)

    sync_rate = {labels["taskqueue"]: value for labels, value in results["sync_match_rate"]}
    assert 0 < sync_rate[task_queue] <= 1, sync_rate

    service_p95 = {labels["operation"]: value for labels, value in results["service_p95"]}
    assert all(service_p95[operation] > 0 for operation in SERVICE_OPERATIONS), service_p95
    assert finite_or_nan(results["service_p95"])

    persistence_p95 = {labels["operation"]: value for labels, value in results["persistence_p95"]}
    assert all(persistence_p95[op] > 0 for op in PERSISTENCE_OPERATIONS), persistence_p95
    assert finite_or_nan(results["persistence_p95"])

    outcomes = {labels["workflowType"]: value for labels, value in results["workflow_success"]}
    assert all(outcomes[name] >= 2 for name in WORKFLOW_TYPES), outcomes  # 2 rounds at least

    # Every panel of the dashboard has data, but those of what the workload may not cause.
    assert not unexpectedly_empty(panels), unexpectedly_empty(panels)

    for name in ("backlog_count", "backlog_age"):
        partitions = {labels["partition"] for labels, _ in results[name]}
        assert partitions <= {"0", "__sticky__"} and "0" in partitions, results[name]
        assert all(value >= 0 and math.isfinite(value) for _, value in results[name])


async def query_until_data(prometheus: Prometheus, task_queue: str) -> dict[str, list[Row]]:
    """Each of QUERIES' results, once it has the rows READY asks for (each query polled until
    then, up to QUERY_TIMEOUT_S)."""
    results: dict[str, list[Row]] = {}

    async def all_ready() -> bool | None:
        for name, promql in QUERIES.items():
            if name in results:
                continue
            rows = await prometheus.query(promql.replace("$taskqueue", task_queue))
            if READY[name](rows, task_queue):
                results[name] = rows
        return len(results) == len(QUERIES) or None

    await poll(all_ready, QUERY_TIMEOUT_S)
    missing = {
        name: await prometheus.query(QUERIES[name].replace("$taskqueue", task_queue))
        for name in QUERIES
        if name not in results
    }
    assert not missing, f"PromQL without the expected data: {missing}\n{prometheus.log()}"
    return results


async def dashboard_queries(
    prometheus: Prometheus, task_queue: str
) -> list[tuple[str, str, list[Row]]]:
    """Every query of the Grafana dashboard in docs/dashboards/, its variables set to this
    workload's namespace and task queue: (panel title, PromQL, result), once only queries of
    MAY_BE_EMPTY are empty (or after QUERY_TIMEOUT_S)."""
    promqls = [
        (title, expr.replace("$namespace", "default").replace("$taskqueue", task_queue))
        for title, expr in dashboards.exprs(dashboards.load())
    ]
    promqls = [(title, expr.replace("$__rate_interval", "1m")) for title, expr in promqls]
    found: list[tuple[str, str, list[Row]]] = []

    async def evaluated() -> bool | None:
        found[:] = [(title, expr, await prometheus.query(expr)) for title, expr in promqls]
        return not unexpectedly_empty(found) or None

    await poll(evaluated, QUERY_TIMEOUT_S)
    return found


def unexpectedly_empty(panels: list[tuple[str, str, list[Row]]]) -> list[tuple[str, str]]:
    return [
        (title, expr)
        for title, expr, rows in panels
        if not rows and not dashboards.metric_names(expr) & MAY_BE_EMPTY
    ]
