"""A conflict the resolver cannot handle (docs/global-namespaces.md, "Conflict resolution"):
its replication task goes to the receiving cluster's DLQ while other workflows keep
replicating, and once the local run is repaired, merging the DLQ applies it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from aion.history.state.execution import restore, snapshot
from tests.helpers import run_sql, unique
from tests.servers import AionProcess
from tests.test_global_namespaces import (
    Cluster,
    Clusters,
    _register_global,
    clusters,  # noqa: F401 (the fixture: clusters A and B, connected both ways)
    eventually,
)
from tests.test_history_replication import (
    REPLICATED_S,
    _histories_equal,
    _history,
    _replication_command,
)


async def _state(server: AionProcess, run_id: str) -> bytes:
    [(state,)] = await run_sql(server, "SELECT state FROM executions WHERE run_id = ?", run_id)
    return bytes(state)


async def _set_state(server: AionProcess, run_id: str, state: bytes) -> None:
    await run_sql(server, "UPDATE executions SET state = ? WHERE run_id = ?", state, run_id)


def _started_at(state: bytes, version: int) -> bytes:
    """The execution state with every item of its version history at `version`: a history
    that shares no event with the original's (its very first event has another version)."""
    s = restore(state)
    s.version_history = [dataclasses.replace(i, version=version) for i in s.version_history]
    return snapshot(s)


async def _set_aside(cluster: Cluster, workflow_id: str) -> list[dict[str, Any]] | None:
    """The workflow's tasks in the cluster's replication DLQ (`aion replication dlq list`), if
    it has any."""
    listed = await _replication_command(cluster, "dlq", "list")
    return [t for t in listed["tasks"] if t["workflow_id"] == workflow_id] or None


async def test_an_unresolvable_conflict_goes_to_the_dlq_and_merges_once_repaired(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    """The injection: with B stopped, B's copy of a replicated run is rewritten in its database
    so that its version history starts at version 2 instead of A's 1, as if B held another
    history of that run; no event is common to the two, so there is nothing to keep and
    branch from. A then signals the run (one replicated transition: no worker runs, so the
    workflow task stays scheduled) and starts another workflow. Restarted, B fails that
    transition with UnresolvableConflict three times and sets it aside in its DLQ; the other
    workflow, and one started after, replicate. The repair puts B's original state back;
    `aion replication dlq merge` then applies the signal, and B's histories equal A's."""
    namespace = await _register_global(clusters)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    task_queue = unique("unworked")
    broken, before, after = (unique("wf") for _ in range(3))
    handle = await a.start_workflow("Idle", id=broken, task_queue=task_queue)
    run_id = handle.result_run_id or ""
    await _histories_equal(clusters, namespace)

    b = clusters.b.server
    await asyncio.to_thread(b.stop)
    try:
        original = await _state(b, run_id)
        await _set_state(b, run_id, _started_at(original, 2))
        await handle.signal("poke", "from-A")
        await a.start_workflow("Idle", id=before, task_queue=task_queue)
    finally:
        await asyncio.to_thread(b.start)

    [set_aside] = await eventually(lambda: _set_aside(clusters.b, broken), REPLICATED_S)
    assert "UnresolvableConflict" in set_aside["error"] and "share no event" in set_aside["error"]
    await a.start_workflow("Idle", id=after, task_queue=task_queue)
    for workflow_id in (before, after):
        run = (workflow_id, (await a.get_workflow_handle(workflow_id).describe()).run_id)
        expected = await _history(clusters.a, namespace, run)

        async def replicated(run: tuple[str, str] = run, expected: list[bytes] = expected) -> Any:
            try:
                return True if await _history(clusters.b, namespace, run) == expected else None
            except RPCError:  # not on B yet
                return None

        await eventually(replicated, REPLICATED_S)
    assert len(await _history(clusters.a, namespace, (broken, run_id))) == 3  # the signal is in

    await _set_state(b, run_id, original)
    merged = await _replication_command(clusters.b, "dlq", "merge")
    assert merged == {"merged": 1, "failing": 0}  # that task alone was set aside
    await _histories_equal(clusters, namespace)
