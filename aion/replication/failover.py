"""Failing a global namespace over with a mode, run on its active cluster
(`aion namespace failover`, through `aion.replication.v1.Replication/Failover`):

- `forced`: the target cluster becomes active at once (what `UpdateNamespace` with an active
  cluster does); what has not replicated yet meets the target's version when it arrives.
- `graceful`: the namespace enters REPLICATION_STATE_HANDOVER, so calls on it are held and its
  executions do not change; if the target has replication tasks of the namespace not applied
  here (its unreplicated tail: a failback before the clusters reconciled after an outage), the
  failover is refused with FAILED_PRECONDITION; otherwise every shard's replication watermark (its last replication task
  id) is recorded once the transitions already committing have landed; when the target has
  applied every shard up to its watermark, the target becomes active (and the state NORMAL).
  On timeout or failure the state returns to NORMAL with this cluster still active. No history
  forks: nothing is written here after the watermarks, and the target has all of it.

Each failover is counted (`namespace_failovers{mode, outcome}`), its wait observed
(`handover_wait_latency{operation="NamespaceFailover"}`) and written to the audit log."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from temporalio.api.enums.v1 import namespace_pb2
from temporalio.api.replication.v1 import message_pb2 as replication_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors, metrics
from aion.common.durations import GoError, parse_duration
from aion.namespaces import Namespace, NamespaceRegistry
from aion.persistence import Store
from aion.replication.commands import add_connection_flags, call
from aion.replication.remote import SERVICE, RemoteClusters
from aion.replication.service import ReplicationCallers
from aion.replication.status import Backlog

if TYPE_CHECKING:
    from aion.auth.audit import AuditLog

audit_log = logging.getLogger("aion.audit")

GRACEFUL, FORCED = "graceful", "forced"
MODES = (GRACEFUL, FORCED)
DEFAULT_TIMEOUT_S = 10.0
ACK_CHECK_S = 0.1  # how often the target's watermarks are read during a handover
ACK_CALL_S = 2.0  # the longest one read of them may take
OPERATION = "NamespaceFailover"
T = TypeVar("T")


@dataclass
class FailoverResult:
    """What a failover did (the answer of `aion namespace failover`)."""

    namespace: str
    mode: str
    source_cluster: str
    target_cluster: str
    failover_version: int
    handover_s: float = 0.0
    """How long the namespace was in handover (graceful)."""
    watermarks: dict[int, int] = field(default_factory=dict)
    """Shard id -> last replication task id the target had to apply (graceful)."""


class _TimedOut(Exception):
    """A graceful failover's wait passed its deadline (`str`: what it was waiting for)."""


async def _poll(
    ask: Callable[[float], Awaitable[T | None]], until: float, waiting_for: Callable[[], str]
) -> T:
    """The first answer of `ask(timeout)` that is not None (a gRPC error counts as None), asked
    every ACK_CHECK_S; `_TimedOut` with `waiting_for()` at `until`."""
    loop = asyncio.get_running_loop()
    while True:
        remaining = until - loop.time()
        if remaining <= 0:
            raise _TimedOut(waiting_for())
        try:
            answer = await ask(min(remaining, ACK_CALL_S))
        except grpc.aio.AioRpcError:
            answer = None
        if answer is not None:
            return answer
        await asyncio.sleep(min(ACK_CHECK_S, max(0.0, until - loop.time())))


class NamespaceFailovers:
    """Fails namespaces active here over to another cluster, gracefully or by force."""

    def __init__(
        self,
        namespaces: NamespaceRegistry,
        store: Store,
        remotes: RemoteClusters,
        audit: AuditLog | None = None,
    ) -> None:
        self.namespaces = namespaces
        self.store = store
        self.remotes = remotes
        self.clusters = remotes.clusters
        self.audit = audit

    async def failover(
        self, namespace: str, target: str, mode: str, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> FailoverResult:
        """Make `target` the namespace's active cluster. A graceful failover runs to its end
        (back to NORMAL at the latest) even if the caller goes away."""
        ns = self._check(namespace, target, mode)
        run = (
            self._graceful(ns, target, timeout_s) if mode == GRACEFUL else self._forced(ns, target)
        )
        task = asyncio.get_running_loop().create_task(self._recorded(ns, mode, target, run))
        return await asyncio.shield(task)

    async def _recorded(
        self, ns: Namespace, mode: str, target: str, run: Awaitable[FailoverResult]
    ) -> FailoverResult:
        """`run`'s result, its outcome counted and audited."""
        try:
            result = await run
        except errors.DeadlineExceeded as e:
            self._record(ns, mode, target, "timed_out", e.message)
            raise
        except Exception as e:
            self._record(ns, mode, target, "failed", str(e))
            raise
        self._record(ns, mode, target, "done", json.dumps(asdict(result)))
        return result

    def _check(self, namespace: str, target: str, mode: str) -> Namespace:
        if mode not in MODES:
            raise errors.InvalidArgument(
                f"unknown failover mode {mode!r}: one of {', '.join(MODES)}"
            )
        ns = self.namespaces.get(namespace)
        current = self.clusters.current_name
        if not ns.is_global:
            raise errors.InvalidArgument(f"Namespace {namespace} is not a global namespace.")
        if ns.active_cluster != current:
            raise errors.namespace_not_active(ns.name, current, ns.active_cluster)
        if target == current:
            raise errors.InvalidArgument(f"Namespace {namespace} is already active in {target}.")
        if target not in ns.clusters:
            raise errors.InvalidArgument(
                f"Cluster {target} is not one of namespace {namespace}'s clusters "
                f"({', '.join(ns.clusters)})."
            )
        if ns.in_handover:
            raise errors.FailedPrecondition(
                f"Namespace {namespace} is in handover already (a graceful failover is under way)."
            )
        remote = self.clusters.remote(target)
        if mode == GRACEFUL and (
            remote is None or not remote.connection_enabled or not remote.replication_enabled
        ):
            raise errors.FailedPrecondition(
                f"Cluster {target} is not connected with replication enabled: a graceful "
                "failover cannot wait for it."
            )
        return ns

    async def _forced(self, ns: Namespace, target: str) -> FailoverResult:
        switched = await self._switch(ns, target)
        return FailoverResult(ns.name, FORCED, ns.active_cluster, target, switched.failover_version)

    async def _graceful(self, ns: Namespace, target: str, timeout_s: float) -> FailoverResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._set_state(ns.name, namespace_pb2.REPLICATION_STATE_HANDOVER)
        try:
            # Transitions that passed their check before the handover began land first.
            await self.store.commits_landed()
            await self._reconciled(ns, target, started + timeout_s)
            watermarks = await self.store.last_replication_task_ids()
            await self._until_applied(target, watermarks, started + timeout_s)
            switched = await self._switch(ns, target)
        except _TimedOut as e:
            await self._set_state(ns.name, namespace_pb2.REPLICATION_STATE_NORMAL)
            raise errors.DeadlineExceeded(
                f"Graceful failover of namespace {ns.name} to {target} timed out: {e}; the "
                f"namespace stays active in {self.clusters.current_name}."
            ) from None
        except BaseException:
            await self._set_state(ns.name, namespace_pb2.REPLICATION_STATE_NORMAL)
            raise
        finally:
            metrics.handover_waited(ns.name, OPERATION, loop.time() - started)
        return FailoverResult(
            ns.name,
            GRACEFUL,
            ns.active_cluster,
            target,
            switched.failover_version,
            round(loop.time() - started, 3),
            watermarks,
        )

    async def _reconciled(self, ns: Namespace, target: str, until: float) -> None:
        """Refuse (FAILED_PRECONDITION) when `target` has replication tasks of the namespace
        this cluster has not applied (its tail from when it was active, e.g. before an outage
        and a forced failover): a failback waits for the clusters to reconcile. A target that
        does not answer is asked again until `until` (DEADLINE_EXCEEDED then)."""
        remote = self.clusters.remote(target)
        assert remote is not None
        current = self.clusters.current_name

        async def ask(timeout: float) -> Backlog:
            applied = {
                w.shard_id: w.task_id
                for w in await self.store.replication_watermarks()
                if w.cluster == target
            }
            shards = {s: applied.get(s, 0) for s in range(remote.history_shard_count)}
            return await self.remotes.backlog(remote.address, shards, ns.id, timeout)

        backlog = await _poll(
            ask,
            until,
            lambda: (
                f"{target} did not answer whether {current} has applied its replication "
                "of the namespace"
            ),
        )
        pending = sum(lag for _, lag in backlog.values())
        if pending:
            raise errors.FailedPrecondition(
                f"Cluster {target} has {pending} replication tasks of namespace {ns.name} that "
                f"{current} has not applied yet: the clusters are not reconciled; fail back "
                "once `aion replication status` shows no lag either way."
            )

    async def _until_applied(self, target: str, watermarks: dict[int, int], until: float) -> None:
        """Return once `target` has applied every shard up to its watermark; DEADLINE_EXCEEDED
        at `until` (the target unreachable meanwhile counts as not applied)."""
        remote = self.clusters.remote(target)
        assert remote is not None
        behind = dict(watermarks)

        async def ask(timeout: float) -> bool | None:
            nonlocal behind
            applied = await self.remotes.watermarks(remote.address, sorted(behind), timeout)
            behind = {s: w for s, w in behind.items() if applied.get(s, 0) < w}
            return None if behind else True

        await _poll(
            ask,
            until,
            lambda: (
                f"{target} has not applied the replication of shards {sorted(behind)} up to "
                "their watermarks"
            ),
        )

    async def _set_state(
        self, namespace: str, state: namespace_pb2.ReplicationState.ValueType
    ) -> None:
        await self.namespaces.update(
            rr.UpdateNamespaceRequest(
                namespace=namespace,
                replication_config=replication_pb.NamespaceReplicationConfig(state=state),
            )
        )

    async def _switch(self, ns: Namespace, target: str) -> Namespace:
        return await self.namespaces.update(
            rr.UpdateNamespaceRequest(
                namespace=ns.name,
                replication_config=replication_pb.NamespaceReplicationConfig(
                    active_cluster_name=target
                ),
            )
        )

    def _record(self, ns: Namespace, mode: str, target: str, outcome: str, detail: str) -> None:
        metrics.namespace_failover(ns.name, mode, outcome)
        result = f"{mode} failover {ns.active_cluster} -> {target}: {outcome}: {detail}"
        if self.audit is not None:
            self.audit.record(None, OPERATION, ns.name, "", result)
        else:
            audit_log.info(
                "audit %s",
                json.dumps({"method": OPERATION, "namespace": ns.name, "result": result}),
            )


def failover_handler(
    failovers: NamespaceFailovers, store: Store, callers: ReplicationCallers
) -> grpc.GenericRpcHandler:
    """`Failover` (from `aion namespace failover`) and `Watermarks` (from the cluster a
    graceful failover is waiting on) of `aion.replication.v1.Replication`."""

    async def failover(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        args = json.loads(request)
        try:
            result = await failovers.failover(
                args["namespace"], args["target"], args["mode"], args["timeout_s"]
            )
        except errors.ServiceError as e:
            await context.abort(e.code, e.message)
        return json.dumps(asdict(result)).encode()

    async def watermarks(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        args = json.loads(request)
        applied = {
            shard: await store.replication_watermark(args["cluster"], shard)
            for shard in args["shard_ids"]
        }
        return json.dumps({"watermarks": applied}).encode()

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Failover": grpc.unary_unary_rpc_method_handler(callers.guard(failover)),
            "Watermarks": grpc.unary_unary_rpc_method_handler(callers.guard(watermarks)),
        },
    )


# ---- `aion namespace failover` -----------------------------------------------------------------
def add_parsers(commands: Any) -> None:
    namespace = commands.add_parser("namespace", help="global namespaces (admin)")
    namespace_commands = namespace.add_subparsers(dest="namespace_command", required=True)
    failover = namespace_commands.add_parser(
        "failover", help="make another cluster a global namespace's active cluster"
    )
    failover.add_argument("--namespace", "-n", required=True)
    failover.add_argument("--to", required=True, help="the cluster to make active")
    failover.add_argument("--mode", choices=MODES, default=GRACEFUL)
    failover.add_argument(
        "--timeout", default="10s", help="how long a graceful failover waits (a Go duration)"
    )
    failover.add_argument(
        "--address", default="127.0.0.1:7233", help="the namespace's active cluster (gRPC)"
    )
    add_connection_flags(failover)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Make the call; its answer (gRPC errors raised as grpc.aio.AioRpcError)."""
    try:
        timeout_s = parse_duration(args.timeout) / 1e9
    except GoError as e:
        raise SystemExit(f"--timeout: {e}") from None
    request = {
        "namespace": args.namespace,
        "target": args.to,
        "mode": args.mode,
        "timeout_s": timeout_s,
    }
    return asyncio.run(call(args, "Failover", request, timeout_s + 30))
