"""Namespaces: the registry every request resolves its namespace through."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import namespace_pb2
from temporalio.api.namespace.v1 import message_pb2 as namespace_pb
from temporalio.api.replication.v1 import message_pb2 as replication_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors, metrics
from aion.common.durations import validate_and_cap
from aion.ids import uuid7
from aion.persistence import ConditionFailedError, NamespaceRecord, Store
from aion.visibility.search_attributes import SearchAttributeError, SearchAttributeRegistry

CLUSTER_NAME = "active"
DEFAULT_RETENTION = Duration(seconds=86400)


def namespace_capabilities() -> namespace_pb.NamespaceInfo.Capabilities:
    """What Aion supports per namespace (workers read these on start)."""
    return namespace_pb.NamespaceInfo.Capabilities(
        eager_workflow_start=True,
        sync_update=True,
        async_update=True,
        worker_heartbeats=True,  # SDK workers then call RecordWorkerHeartbeat
    )


class Namespace:
    """A resolved namespace: its id, name and full description."""

    def __init__(self, record: NamespaceRecord) -> None:
        self.record = record
        self.description = rr.DescribeNamespaceResponse.FromString(record.data)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def failover_version(self) -> int:
        return self.description.failover_version

    @property
    def retention_ns(self) -> int:
        """How long a closed run is kept (the namespace's retention)."""
        ttl = self.description.config.workflow_execution_retention_ttl
        return ttl.seconds * 1_000_000_000 + ttl.nanos


class NamespaceRegistry:
    """In-memory view of the namespaces table, written through to the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_name: dict[str, Namespace] = {}
        self._by_id: dict[str, Namespace] = {}
        self.search_attributes = SearchAttributeRegistry(store)

    async def load(self) -> None:
        await self.search_attributes.load()
        records = await self.store.list_namespaces()
        for record in records:
            known = self._by_id.get(record.id)
            # A read that started before a change made here must not undo it.
            if known is None or known.record.notification_version <= record.notification_version:
                self._index(Namespace(record))
        stored = {record.id for record in records}
        for gone in [ns for ns in self._by_id.values() if ns.id not in stored]:
            self._forget(gone)  # deleted by another process

    def _index(self, ns: Namespace) -> None:
        known = self._by_id.get(ns.id)
        if known is not None and known.name != ns.name:
            self._by_name.pop(known.name, None)  # renamed (deleted)
        self._by_name[ns.name] = ns
        self._by_id[ns.id] = ns
        metrics.name_namespace(ns.id, ns.name)

    def _forget(self, ns: Namespace) -> None:
        self._by_id.pop(ns.id, None)
        if self._by_name.get(ns.name) is ns:
            del self._by_name[ns.name]

    # ---- deletion ----------------------------------------------------------------------
    async def mark_deleted(self, ns: Namespace) -> Namespace:
        """DeleteNamespace, as Temporal does it: the namespace is renamed
        `<name>-deleted-<first 5 characters of its id>` and its state set to DELETED, so its
        name is free at once; `reap_deleted` then deletes it with everything of its."""
        description = rr.DescribeNamespaceResponse()
        description.CopyFrom(ns.description)
        name = f"{ns.name}-deleted-{ns.id[:5]}"
        description.namespace_info.name = name
        description.namespace_info.state = namespace_pb2.NAMESPACE_STATE_DELETED
        record = NamespaceRecord(
            id=ns.id,
            name=name,
            data=description.SerializeToString(),
            notification_version=ns.record.notification_version + 1,
        )
        await self.store.update_namespace(record)
        deleted = Namespace(record)
        self._index(deleted)
        return deleted

    async def reap_deleted(self) -> None:
        """Delete every namespace marked deleted, with its executions, history, tasks,
        visibility, schedules and deployments. The mark is durable: work a crash cut short is
        done again at the next start."""
        for ns in list(self._by_id.values()):
            if ns.description.namespace_info.state == namespace_pb2.NAMESPACE_STATE_DELETED:
                await self.store.delete_namespace(ns.id)
                self._forget(ns)

    def get(self, name: str) -> Namespace:
        if not name:
            raise errors.InvalidArgument("Namespace is not set on request.")
        ns = self._by_name.get(name)
        if ns is None:
            raise errors.namespace_not_found(name)
        return ns

    def id_of(self, name: str) -> str | None:
        ns = self._by_name.get(name)
        return ns.id if ns else None

    def by_id(self, namespace_id: str) -> Namespace:
        return self._by_id[namespace_id]

    def all(self) -> list[Namespace]:
        return sorted(self._by_name.values(), key=lambda ns: ns.name)

    async def register(
        self, request: rr.RegisterNamespaceRequest, start_up: bool = False
    ) -> Namespace:
        """RegisterNamespace; `start_up` for the dev server's own namespaces, which Temporal
        creates without a replication state (registered ones are REPLICATION_STATE_NORMAL)."""
        if not request.namespace:
            raise errors.InvalidArgument("Namespace is not set on request.")
        _check_retention(request.workflow_execution_retention_period)
        if request.namespace in self._by_name:
            raise errors.AlreadyExists("Namespace already exists.")
        description = rr.DescribeNamespaceResponse(
            namespace_info=namespace_pb.NamespaceInfo(
                name=request.namespace,
                state=namespace_pb2.NAMESPACE_STATE_REGISTERED,
                description=request.description,
                owner_email=request.owner_email,
                id=uuid7(),
                data=dict(request.data),
                supports_schedules=True,
            ),
            config=namespace_pb.NamespaceConfig(
                workflow_execution_retention_ttl=request.workflow_execution_retention_period
                if request.HasField("workflow_execution_retention_period")
                else DEFAULT_RETENTION,
                history_archival_state=namespace_pb2.ARCHIVAL_STATE_DISABLED,
                visibility_archival_state=namespace_pb2.ARCHIVAL_STATE_DISABLED,
            ),
            replication_config=replication_pb.NamespaceReplicationConfig(
                active_cluster_name=CLUSTER_NAME,
                clusters=[replication_pb.ClusterReplicationConfig(cluster_name=CLUSTER_NAME)],
                state=namespace_pb2.REPLICATION_STATE_UNSPECIFIED
                if start_up
                else namespace_pb2.REPLICATION_STATE_NORMAL,
            ),
            is_global_namespace=request.is_global_namespace,
        )
        record = NamespaceRecord(
            id=description.namespace_info.id,
            name=request.namespace,
            data=description.SerializeToString(),
        )
        try:
            await self.store.create_namespace(record)
        except ConditionFailedError:
            raise errors.AlreadyExists("Namespace already exists.") from None
        ns = Namespace(record)
        self._index(ns)
        return ns

    async def ensure(self, name: str) -> Namespace:
        """Register `name` with defaults unless it exists (dev server start-up)."""
        if name in self._by_name:
            return self._by_name[name]
        try:
            return await self.register(rr.RegisterNamespaceRequest(namespace=name), start_up=True)
        except errors.AlreadyExists:  # another process sharing the database registered it
            await self.load()
            return self.get(name)

    async def update(self, request: rr.UpdateNamespaceRequest) -> Namespace:
        ns = self.get(request.namespace)
        description = rr.DescribeNamespaceResponse()
        description.CopyFrom(ns.description)
        info = description.namespace_info
        if request.HasField("update_info"):
            u = request.update_info
            if u.description:
                info.description = u.description
            if u.owner_email:
                info.owner_email = u.owner_email
            for key, value in u.data.items():
                info.data[key] = value
            if u.state:
                info.state = u.state
        if request.HasField("config"):
            c = request.config
            if c.HasField("workflow_execution_retention_ttl"):
                _check_retention(c.workflow_execution_retention_ttl)
                description.config.workflow_execution_retention_ttl.CopyFrom(
                    c.workflow_execution_retention_ttl
                )
            for field in ("history_archival_state", "visibility_archival_state"):
                if getattr(c, field):
                    setattr(description.config, field, getattr(c, field))
            if c.custom_search_attribute_aliases:
                try:
                    await self.search_attributes.upsert_aliases(
                        ns.id, c.custom_search_attribute_aliases
                    )
                except SearchAttributeError as e:
                    raise errors.InvalidArgument(str(e)) from None
        record = NamespaceRecord(
            id=ns.id,
            name=ns.name,
            data=description.SerializeToString(),
            notification_version=ns.record.notification_version + 1,
        )
        await self.store.update_namespace(record)
        updated = Namespace(record)
        self._index(updated)
        return updated


def _check_retention(retention: Duration) -> None:
    """INVALID_ARGUMENT for a negative retention; one over 100 years is cut to 100 years."""
    if validate_and_cap(retention):
        raise errors.InvalidArgument("A valid retention period is not set on request.")
