"""What a cluster answers the other clusters: its identity, the global namespaces it replicates
to them, and the replication tasks and history of its executions in those namespaces."""

from __future__ import annotations

import dataclasses
import hmac
import json
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import json_format
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion import errors
from aion.cluster_metadata import ClusterMetadata
from aion.history.api.reapply_events import reapplicable, reapply_events
from aion.namespaces import NamespaceRegistry
from aion.persistence import Store
from aion.replication import status
from aion.replication.history import HistoryReplicator
from aion.replication.remote import (
    SECRET_HEADER,
    SERVICE,
    RemoteClusters,
    decode_events,
    encode_events,
    encode_namespaces,
    encode_tasks,
)

MAX_TASKS = 200
UNAUTHORIZED = "Request unauthorized."  # Temporal's text for missing or bad credentials
Method = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


class ReplicationCallers:
    """Who may call the replication service: with a secret, the callers that send it (the
    other clusters, and `aion replication` given it); without one, anyone, unless the server
    has auth on (then no one: connecting clusters needs the secret)."""

    def __init__(self, secret: str, auth_on: bool) -> None:
        self._secret = secret.encode()
        self._open = not secret and not auth_on

    def allowed(self, context: grpc.aio.ServicerContext) -> bool:
        if self._open:
            return True
        sent = next((v for k, v in context.invocation_metadata() or () if k == SECRET_HEADER), "")
        return bool(self._secret) and hmac.compare_digest(str(sent).encode(), self._secret)

    def guard(self, method: Method) -> Method:
        async def guarded(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            if not self.allowed(context):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHORIZED)
            return await method(request, context)

        return guarded


class ReplicationAcks:
    """How far each connected cluster has applied each shard's replication tasks, as its last
    `Tasks` call said, kept in the store (whichever process serves the call); the tasks every
    cluster replicated to has applied are deleted."""

    def __init__(self, clusters: ClusterMetadata, store: Store) -> None:
        self.clusters = clusters
        self.store = store
        self._recorded: dict[tuple[str, int], int] = {}  # (cluster, shard id) -> task id

    async def acknowledged(self, cluster: str, shard_id: int, task_id: int) -> None:
        if task_id <= self._recorded.get((cluster, shard_id), 0):
            return
        await self.store.acknowledge_replication(cluster, shard_id, task_id)
        self._recorded[(cluster, shard_id)] = task_id
        targets = [r.name for r in self.clusters.remotes() if r.replication_enabled]
        acks = {
            a.cluster: a.task_id
            for a in await self.store.replication_acks()
            if a.shard_id == shard_id
        }
        if targets and all(name in acks for name in targets):
            await self.store.delete_replication_tasks(shard_id, min(acks[n] for n in targets))


def replication_handler(
    namespaces: NamespaceRegistry,
    store: Store,
    acks: ReplicationAcks,
    replicator: HistoryReplicator,
    remotes: RemoteClusters,
    callers: ReplicationCallers,
) -> grpc.GenericRpcHandler:
    """`aion.replication.v1.Replication`: `DescribeCluster` answers this cluster's identity;
    `Namespaces` answers, to the cluster named in the request, every global namespace it is one
    of the clusters of, as stored here; `Tasks` a shard's replication tasks after the task id
    the caller has applied, with their events; `History` an execution's events from an id;
    `Backlog` the highest task id of each shard and the tasks after those the caller applied
    (of one namespace, when the request names its id); `Tasks` is refused to a cluster this one
    has replication to disabled;
    `DLQ` lists, purges or merges this cluster's replication DLQ (`aion replication dlq`);
    `Status` where replication stands here, per shard (`aion replication status`); `Reapply`
    re-applies on a run the events of a branch that lost a conflict on the calling cluster
    (FAILED_PRECONDITION unless the namespace is active here); `Branches` lists a run's hidden
    branches (`aion replication branches`). Each answers only the `callers` allowed."""

    async def describe(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return json.dumps(dataclasses.asdict(namespaces.clusters.identity())).encode()

    async def list_namespaces(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        cluster = json.loads(request)["cluster"]
        # A failover made here reaches the other cluster only once the transitions that began
        # before it are written, so the new active cluster's catch-up finds them.
        await store.commits_landed()
        return encode_namespaces([ns.record for ns in namespaces.replicated_to(cluster)])

    async def tasks(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        args = json.loads(request)
        shard_id, after = args["shard_id"], args["after_task_id"]
        caller = namespaces.clusters.remote(args["cluster"])
        if caller is None or not caller.replication_enabled:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Replication to cluster {args['cluster']} is not enabled on cluster "
                f"{namespaces.clusters.current_name}.",
            )
        await acks.acknowledged(args["cluster"], shard_id, after)
        found = await store.read_replication_tasks(shard_id, after, min(args["limit"], MAX_TASKS))
        answer = []
        for task in found:
            events: list[bytes] = []
            if task.first_event_id:
                key = (task.namespace_id, task.workflow_id, task.run_id)
                count = task.next_event_id - task.first_event_id
                events = await store.read_events(*key, task.first_event_id, count)
            answer.append((task, events))
        return encode_tasks(answer)

    async def history(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        args = json.loads(request)
        namespace_id, workflow_id, run_id = args["execution"]
        events = await store.read_events(
            namespace_id, workflow_id, run_id, args["first_event_id"], args["limit"]
        )
        return encode_events(events)

    async def reapply(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        args = json.loads(request)
        namespace_id, workflow_id, run_id = args["execution"]
        events = reapplicable(decode_events(args["events"]))
        try:
            await reapply_events(replicator.engine, (namespace_id, workflow_id, run_id), events)
        except errors.ServiceError as e:
            await context.abort(e.code, e.message)
        return b"{}"

    async def branches(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        args = json.loads(request)
        try:
            namespace_id = namespaces.get(args["namespace"]).id
            key = await replicator.engine.resolve(
                namespace_id, args["workflow_id"], args.get("run_id", "")
            )
        except errors.ServiceError as e:
            await context.abort(e.code, e.message)
        found = await store.hidden_branches(*key)
        return json.dumps(
            {
                "run_id": key[2],
                "branches": [
                    {
                        "branch": b.branch,
                        "reapplied": b.reapplied,
                        "set_aside": b.set_aside,
                        "events": [
                            json_format.MessageToDict(history_pb.HistoryEvent.FromString(e))
                            for e in b.events
                        ],
                    }
                    for b in found
                ],
            }
        ).encode()

    async def backlog(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        args = json.loads(request)
        applied = {int(shard): task_id for shard, task_id in args["applied"].items()}
        found = await status.backlog(store, applied, args.get("namespace_id", ""))
        return json.dumps({"shards": {str(shard): list(v) for shard, v in found.items()}}).encode()

    async def replication_status(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        clusters = namespaces.clusters
        answer = {
            "cluster": clusters.current_name,
            "receiving": await status.receiving(store, clusters, remotes.backlog),
            "sending": await status.sending(store, clusters),
        }
        return json.dumps(answer).encode()

    async def dlq(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        args = json.loads(request)
        source = args.get("source_cluster", "")
        if args["action"] == "merge":
            merged, failing = await replicator.merge_dlq(source)
            return json.dumps({"merged": merged, "failing": failing}).encode()
        records = [
            r for r in await store.list_replication_dlq() if source in ("", r.source_cluster)
        ]
        if args["action"] == "purge":
            for r in records:
                await store.delete_replication_dlq(r.source_cluster, r.shard_id, r.task_id)
            return json.dumps({"purged": len(records)}).encode()
        listed = [{k: v for k, v in dataclasses.asdict(r).items() if k != "task"} for r in records]
        return json.dumps({"tasks": listed}).encode()

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "DescribeCluster": grpc.unary_unary_rpc_method_handler(callers.guard(describe)),
            "Namespaces": grpc.unary_unary_rpc_method_handler(callers.guard(list_namespaces)),
            "Tasks": grpc.unary_unary_rpc_method_handler(callers.guard(tasks)),
            "History": grpc.unary_unary_rpc_method_handler(callers.guard(history)),
            "Backlog": grpc.unary_unary_rpc_method_handler(callers.guard(backlog)),
            "DLQ": grpc.unary_unary_rpc_method_handler(callers.guard(dlq)),
            "Status": grpc.unary_unary_rpc_method_handler(callers.guard(replication_status)),
            "Reapply": grpc.unary_unary_rpc_method_handler(callers.guard(reapply)),
            "Branches": grpc.unary_unary_rpc_method_handler(callers.guard(branches)),
        },
    )
