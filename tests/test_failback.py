"""Failback after an outage (issue 21, acceptance 4; docs/global-namespaces.md, "Failing back
after an outage"): A, active, acknowledges signals B never receives (A's replication to B is
disabled, so B cannot pull them: the outage's unreplicated tail, held back deterministically),
then dies; B is made active by force. With A back, a graceful failback from B to A is refused
with FAILED_PRECONDITION while B has not applied A's tail of the namespace (another namespace's
tail not counted); once replication flows again and `aion replication status` shows no lag
either way, the graceful failback succeeds (failover version 11) and every signal A had
acknowledged is in the final histories."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import namespace_pb2
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import unique
from tests.test_conflict_resolution import Collector
from tests.test_global_namespaces import (
    Clusters,
    _register_global,
    _replicated,
    clusters,  # noqa: F401 (the fixture: clusters A and B, connected both ways)
    eventually,
)
from tests.test_handover import _aion_failover
from tests.test_history_replication import REPLICATED_S, _histories_equal, _replication_command

WORKFLOWS = 3
NOT_RECONCILED = re.compile(
    r"Cluster A has (\d+) replication tasks of namespace (\S+) that B has not applied yet: the "
    r"clusters are not reconciled; fail back once `aion replication status` shows no lag "
    r"either way\."
)


def _lag(status: dict[str, Any]) -> int:
    """The replication lag both ways in an `aion replication status` answer (rows without
    an answer from the source count as lagging)."""
    receiving = sum(row.get("lag", 1) for row in status["receiving"])
    return receiving + sum(row["lag"] for row in status["sending"])


async def test_failback_is_refused_until_reconciled(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    namespace = await _register_global(clusters)
    other = await _register_global(clusters)
    await _replicated(clusters.b, other, 1)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    task_queue = unique("failback")
    ids = [unique("wf") for _ in range(WORKFLOWS)]
    for workflow_id in ids:
        await a.start_workflow(
            Collector.run, id=workflow_id, task_queue=task_queue, task_timeout=timedelta(seconds=2)
        )
    await _histories_equal(clusters, namespace)

    # The outage: A acknowledges a signal of each workflow (and starts one in another
    # namespace) that B cannot pull, then dies; B is made active by force.
    await clusters.a.upsert(clusters.b, replication=False)
    for workflow_id in ids:
        await a.get_workflow_handle(workflow_id).signal(Collector.add, "during the outage")
    other_client = await Client.connect(clusters.a.server.address, namespace=other)
    await other_client.start_workflow(Collector.run, id=unique("wf"), task_queue=task_queue)
    await asyncio.to_thread(clusters.a.server.kill)
    await clusters.b.cli.ok(
        "operator", "namespace", "update", "-n", namespace, "--active-cluster", "B"
    )
    await _replicated(clusters.b, namespace, 2)

    # A back, its tail not applied on B: the failback is refused, counting this namespace's
    # tail only; the namespace stays active on B.
    await asyncio.to_thread(clusters.a.server.start)
    code, _, err = await _aion_failover(clusters, namespace, "graceful", "10s", on=clusters.b)
    assert code != 0 and "FAILED_PRECONDITION" in err, err
    refused = NOT_RECONCILED.search(err)
    assert refused is not None, err
    assert (int(refused[1]), refused[2]) == (WORKFLOWS, namespace)
    status = await _replication_command(clusters.b, "status")
    from_a = sum(row["lag"] for row in status["receiving"] if row["source_cluster"] == "A")
    assert from_a == WORKFLOWS + 1  # the other namespace's start too
    described = await clusters.b.describe(namespace)
    assert described.replication_config.active_cluster_name == "B"
    assert described.failover_version == 2
    assert described.replication_config.state == namespace_pb2.REPLICATION_STATE_NORMAL

    # Replication flows again: once no lag is left either way, the failback succeeds.
    await clusters.a.upsert(clusters.b)
    enabled_at = time.monotonic()

    async def reconciled() -> bool | None:
        return True if _lag(await _replication_command(clusters.b, "status")) == 0 else None

    await eventually(reconciled, REPLICATED_S)
    reconciled_s = time.monotonic() - enabled_at
    code, out, err = await _aion_failover(clusters, namespace, "graceful", "10s", on=clusters.b)
    assert code == 0, err
    result = json.loads(out)
    assert (result["mode"], result["target_cluster"]) == ("graceful", "A")
    assert result["failover_version"] == 11
    await _replicated(clusters.a, namespace, 11)

    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    async with Worker(
        a, task_queue=task_queue, workflows=[Collector], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        for workflow_id in ids:
            await a.get_workflow_handle(workflow_id).signal(Collector.add, "finish")
        results = [await a.get_workflow_handle(w).result() for w in ids]
    assert all(sorted(r) == ["during the outage", "finish"] for r in results), results
    await _histories_equal(clusters, namespace)
    print(f"\nreconciled {reconciled_s:.2f} s after replication resumed; failback {result}")
