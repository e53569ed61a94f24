"""Hybrid automatic failover (docs/global-namespaces.md, "Automatic failover"): `aion
failover-controller` watches a global namespace's active cluster A; A is killed with SIGKILL
while replication to B lags (B paused) and signals A acknowledged have not reached B. The
controller fails over to B (a graceful attempt first, which A cannot run, then forced) within
10 s of its first failed check; workers polling both clusters carry on on B; once A is back, the
signals it had acknowledged reach B, and every workflow completes with all of its signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

from temporalio.client import Client

from tests.helpers import unique
from tests.servers import ROOT
from tests.test_conflict_resolution import Collector, _events, _signals, collector_workers
from tests.test_global_namespaces import (
    Clusters,
    _register_global,
    _replicated,
    clusters,  # noqa: F401 (the fixture: clusters A and B, connected both ways)
    eventually,
)
from tests.test_history_replication import REPLICATED_S, _histories_equal

WORKFLOWS = 10
DETECTION_BOUND_S = 10.0  # the bound, from the first failed check to B being active


def _controller(namespace: str, pair: Clusters) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "aion", "failover-controller", "-n", namespace]
    args += ["--cluster", f"A={pair.a.server.address}"]
    args += ["--cluster", f"B={pair.b.server.address}"]
    args += ["--interval", "500ms", "--failures", "3", "--graceful-timeout", "5s"]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def _failover_line(controller: subprocess.Popen[str]) -> dict[str, object]:
    """The controller's first failover line (read until one comes)."""
    assert controller.stdout is not None
    for line in controller.stdout:
        if line.startswith("{"):
            answer: dict[str, object] = json.loads(line)
            return answer
    raise AssertionError("the controller ended without failing over")


async def test_a_killed_active_cluster_is_failed_over_and_nothing_acknowledged_is_lost(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    namespace = await _register_global(clusters)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    b = await Client.connect(clusters.b.server.address, namespace=namespace)
    task_queue = unique("hybrid")
    ids = [unique("wf") for _ in range(WORKFLOWS)]
    workers = collector_workers([a, b], task_queue)
    controller = _controller(namespace, clusters)
    try:
        async with workers[0], workers[1]:
            for workflow_id in ids:
                await a.start_workflow(
                    Collector.run,
                    id=workflow_id,
                    task_queue=task_queue,
                    task_timeout=timedelta(seconds=2),
                )
            await _histories_equal(clusters, namespace)

            # Replication lags (B paused); A acknowledges a signal of each, then dies.
            b_pid = clusters.b.server.proc.pid  # type: ignore[union-attr]
            os.kill(b_pid, signal.SIGSTOP)
            try:
                for workflow_id in ids:
                    await a.get_workflow_handle(workflow_id).signal(Collector.add, "before")
                await asyncio.to_thread(clusters.a.server.kill)
                killed = time.monotonic()
            finally:
                os.kill(b_pid, signal.SIGCONT)
            failover = await asyncio.to_thread(_failover_line, controller)
            active_after_s = time.monotonic() - killed
            assert failover["target_cluster"] == "B" and failover["mode"] == "forced"
            assert failover["since_first_failed_check_s"] < DETECTION_BOUND_S  # type: ignore[operator]
            await _replicated(clusters.b, namespace, 2)

            # B carries on: a signal of each lands there.
            for workflow_id in ids:
                await b.get_workflow_handle(workflow_id).signal(Collector.add, "after")

            # A back: what it had acknowledged reaches B (re-applied, or replicated on).
            await asyncio.to_thread(clusters.a.server.start)
            await _replicated(clusters.a, namespace, 2)
            for workflow_id in ids:
                run = (workflow_id, (await b.get_workflow_handle(workflow_id).describe()).run_id)

                async def both_signals(run: tuple[str, str] = run) -> bool | None:
                    signals = {v for v, _ in _signals(await _events(clusters.b, namespace, run))}
                    return True if {"before", "after"} <= signals else None

                await eventually(both_signals, REPLICATED_S)
                await b.get_workflow_handle(workflow_id).signal(Collector.add, "finish")
            results = [await b.get_workflow_handle(w).result() for w in ids]
    finally:
        controller.terminate()
        controller.wait(10)
    for result in results:
        assert sorted(result) == ["after", "before", "finish"]
    await _histories_equal(clusters, namespace)
    print(f"B active {active_after_s:.2f} s after A was killed; controller: {failover}")
