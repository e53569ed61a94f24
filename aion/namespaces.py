"""Namespaces: the registry every request resolves its namespace through."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import namespace_pb2
from temporalio.api.namespace.v1 import message_pb2 as namespace_pb
from temporalio.api.replication.v1 import message_pb2 as replication_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors, metrics
from aion.cluster_metadata import ClusterConfig, ClusterMetadata
from aion.common.durations import validate_and_cap
from aion.common.timeutil import now_ns
from aion.ids import uuid7
from aion.persistence import ConditionFailedError, NamespaceRecord, Store
from aion.visibility.search_attributes import SearchAttributeError, SearchAttributeRegistry

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
    def is_global(self) -> bool:
        return self.description.is_global_namespace

    @property
    def active_cluster(self) -> str:
        return self.description.replication_config.active_cluster_name

    @property
    def in_handover(self) -> bool:
        """Whether a graceful failover is draining its replication (REPLICATION_STATE_HANDOVER):
        calls on it are held, its executions do not change."""
        return self.description.replication_config.state == namespace_pb2.REPLICATION_STATE_HANDOVER

    @property
    def clusters(self) -> list[str]:
        return [c.cluster_name for c in self.description.replication_config.clusters]

    @property
    def retention_ns(self) -> int:
        """How long a closed run is kept (the namespace's retention)."""
        ttl = self.description.config.workflow_execution_retention_ttl
        return ttl.seconds * 1_000_000_000 + ttl.nanos


class NamespaceRegistry:
    """In-memory view of the namespaces table, written through to the store."""

    def __init__(self, store: Store, clusters: ClusterMetadata | None = None) -> None:
        self.store = store
        self.clusters = clusters or ClusterMetadata(store, ClusterConfig(), 1, "")
        self._by_name: dict[str, Namespace] = {}
        self._by_id: dict[str, Namespace] = {}
        self._changed = asyncio.Event()
        self.search_attributes = SearchAttributeRegistry(store)
        # Called with a namespace active here that now replicates to more clusters (promoted,
        # or clusters added): its existing executions are to be back-filled to them.
        self.replication_widened: Callable[[Namespace], None] = lambda ns: None

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
        self._changed.set()  # wakes those waiting for a change
        self._changed = asyncio.Event()
        if (
            known is not None
            and self.replicates(ns.id)
            and self._targets(ns) - self._targets(known)
        ):
            self.replication_widened(ns)

    def _targets(self, ns: Namespace) -> set[str]:
        """The other clusters a namespace replicates to (when active here)."""
        return set(ns.clusters) - {self.clusters.current_name} if ns.is_global else set()

    async def wait_for_change(self, timeout: float) -> None:
        """Return when a namespace changes here, or after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

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
        return await self._save(ns, description, ns.record.config_version)

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

    def find(self, name: str) -> Namespace | None:
        """The named namespace, None if unknown."""
        return self._by_name.get(name)

    def id_of(self, name: str) -> str | None:
        ns = self._by_name.get(name)
        return ns.id if ns else None

    def by_id(self, namespace_id: str) -> Namespace:
        return self._by_id[namespace_id]

    def knows(self, namespace_id: str) -> bool:
        return namespace_id in self._by_id

    def is_standby(self, namespace_id: str) -> bool:
        """Whether the namespace is global and active in another cluster: its executions here
        only take in what the active cluster replicates."""
        ns = self._by_id.get(namespace_id)
        return ns is not None and ns.is_global and ns.active_cluster != self.clusters.current_name

    def check_active(self, namespace_id: str) -> None:
        """Refuse, with NamespaceNotActive, a change of an execution in a namespace that is
        standby here (only replication changes those), and, with Temporal's handover error, one
        in a namespace in handover (its replication is being drained to the next active
        cluster)."""
        if self.is_standby(namespace_id):
            ns = self._by_id[namespace_id]
            raise errors.namespace_not_active(
                ns.name, self.clusters.current_name, ns.active_cluster
            )
        if self.in_handover(namespace_id):
            raise errors.namespace_handover()

    def in_handover(self, namespace_id: str) -> bool:
        ns = self._by_id.get(namespace_id)
        return ns is not None and ns.in_handover

    def replicates(self, namespace_id: str) -> bool:
        """Whether the namespace is global and active here: its transitions replicate."""
        ns = self._by_id.get(namespace_id)
        return ns is not None and ns.is_global and ns.active_cluster == self.clusters.current_name

    def all(self) -> list[Namespace]:
        return sorted(self._by_name.values(), key=lambda ns: ns.name)

    async def register(
        self, request: rr.RegisterNamespaceRequest, start_up: bool = False
    ) -> Namespace:
        """RegisterNamespace, checked as Temporal does; `start_up` for the dev server's own
        namespaces, which Temporal creates without a replication state (registered ones are
        REPLICATION_STATE_NORMAL)."""
        if not request.namespace:
            raise errors.InvalidArgument("Namespace is not set on request.")
        clusters = self.clusters
        if request.is_global_namespace and not clusters.global_namespace_enabled:
            raise errors.InvalidArgument("Cannot register global namespace when not enabled")
        if request.is_global_namespace and not clusters.is_master:
            raise errors.InvalidArgument(NOT_MASTER)
        _check_retention(request.workflow_execution_retention_period)
        if request.namespace in self._by_name:
            raise errors.AlreadyExists("Namespace already exists.")
        active = request.active_cluster_name or clusters.current_name
        names = [c.cluster_name for c in request.clusters] or [active]
        self._check_replication(active, names, request.is_global_namespace)
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
                active_cluster_name=active,
                clusters=[replication_pb.ClusterReplicationConfig(cluster_name=n) for n in names],
                state=namespace_pb2.REPLICATION_STATE_UNSPECIFIED
                if start_up
                else namespace_pb2.REPLICATION_STATE_NORMAL,
            ),
            is_global_namespace=request.is_global_namespace,
            failover_version=clusters.next_failover_version(active, 0)
            if request.is_global_namespace
            else 0,
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

    def _check_replication(self, active: str, clusters: list[str], is_global: bool) -> None:
        """A namespace's clusters as Temporal checks them: each one known and enabled; a global
        namespace's active cluster among them, a local one's this cluster alone."""
        for name in (active, *clusters):
            if not self.clusters.is_enabled(name):
                raise errors.InvalidArgument(f"Invalid cluster name: {name}")
        if is_global:
            if active not in clusters:
                raise errors.InvalidArgument("Active cluster is not contained in all clusters.")
        elif active != self.clusters.current_name:
            raise errors.InvalidArgument("Invalid local namespace active cluster")
        elif clusters != [active]:
            raise errors.InvalidArgument("Invalid local namespace clusters")

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
        """UpdateNamespace as Temporal: a change of configuration raises the config version; a
        change of the active cluster (of a global namespace, or a promotion to global) is a
        failover, to the next failover version, recorded in the failover history; both at once
        are refused."""
        ns = self.get(request.namespace)
        description = rr.DescribeNamespaceResponse()
        description.CopyFrom(ns.description)
        configured = self._configure(description, request)
        replication = description.replication_config
        failover = False
        if request.HasField("replication_config"):
            wanted = request.replication_config
            if wanted.clusters:
                configured = True
                del replication.clusters[:]
                replication.clusters.extend(
                    replication_pb.ClusterReplicationConfig(cluster_name=c.cluster_name)
                    for c in wanted.clusters
                )
            if wanted.state and wanted.state != replication.state:
                _check_replication_state(description, wanted)
                configured = True
                replication.state = wanted.state
            if wanted.active_cluster_name:
                failover = True
                replication.active_cluster_name = wanted.active_cluster_name
                replication.state = namespace_pb2.REPLICATION_STATE_NORMAL
        promoted = request.promote_namespace and not description.is_global_namespace
        is_global = description.is_global_namespace = (
            description.is_global_namespace or request.promote_namespace
        )
        self._check_replication(
            replication.active_cluster_name,
            [c.cluster_name for c in replication.clusters],
            is_global,
        )
        if is_global and not self.clusters.global_namespace_enabled:
            raise errors.InvalidArgument(
                "global namespace is not enabled on this cluster, cannot update global namespace "
                f"or promote local namespace: {request.namespace}"
            )
        if configured and failover and is_global:
            raise errors.InvalidArgument(
                "Cannot set active cluster to current cluster when other parameters are set."
            )
        if not (configured or failover or promoted):
            return ns
        if request.config.custom_search_attribute_aliases:
            try:
                await self.search_attributes.upsert_aliases(
                    ns.id, request.config.custom_search_attribute_aliases
                )
            except SearchAttributeError as e:
                raise errors.InvalidArgument(str(e)) from None
        if is_global and (failover or promoted):
            description.failover_version = self.clusters.next_failover_version(
                replication.active_cluster_name, description.failover_version
            )
        if is_global and (configured or failover) and request.HasField("replication_config"):
            _record_failover(description)
        return await self._save(ns, description, ns.record.config_version + int(configured))

    @staticmethod
    def _configure(
        description: rr.DescribeNamespaceResponse, request: rr.UpdateNamespaceRequest
    ) -> bool:
        """Apply the request's info and config to `description` (search attribute aliases
        aside); whether anything changed."""
        changed = False
        info = description.namespace_info
        if request.HasField("update_info"):
            u = request.update_info
            handover = namespace_pb2.REPLICATION_STATE_HANDOVER
            if (
                u.state
                and u.state != info.state
                and description.replication_config.state == handover
            ):
                raise errors.InvalidArgument(
                    "cannot update namespace state while its replication state in "
                    "REPLICATION_STATE_HANDOVER"
                )
            changed = bool(u.description or u.owner_email or u.data or u.state)
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
                changed = True
                _check_retention(c.workflow_execution_retention_ttl)
                description.config.workflow_execution_retention_ttl.CopyFrom(
                    c.workflow_execution_retention_ttl
                )
            for field in ("history_archival_state", "visibility_archival_state"):
                if getattr(c, field) and getattr(c, field) != getattr(description.config, field):
                    changed = True
                    setattr(description.config, field, getattr(c, field))
            changed = changed or bool(c.custom_search_attribute_aliases)
        return changed

    async def _save(
        self, ns: Namespace, description: rr.DescribeNamespaceResponse, config_version: int
    ) -> Namespace:
        record = NamespaceRecord(
            id=ns.id,
            name=description.namespace_info.name,
            data=description.SerializeToString(),
            notification_version=ns.record.notification_version + 1,
            config_version=config_version,
        )
        await self.store.update_namespace(record)
        updated = Namespace(record)
        self._index(updated)
        return updated

    # ---- replication ---------------------------------------------------------------------
    def replicated_to(self, cluster: str) -> list[Namespace]:
        """The global namespaces `cluster` is one of the clusters of."""
        return [ns for ns in self._by_id.values() if cluster in ns.clusters and ns.is_global]

    async def apply_replicated(self, record: NamespaceRecord) -> Namespace | None:
        """Take in a global namespace as another cluster has it: created with the same id if
        new; otherwise its configuration if its config version is newer, its active cluster and
        failover history if its failover version is newer, as Temporal's namespace replication
        applies them. The namespace as changed, or None when nothing was newer."""
        theirs = rr.DescribeNamespaceResponse.FromString(record.data)
        ns = self._by_id.get(record.id)
        if ns is None:
            if record.name in self._by_name:
                raise errors.AlreadyExists(
                    f"Namespace {record.name} exists here with another id; not replicated."
                )
            new = NamespaceRecord(record.id, record.name, record.data, 0, record.config_version)
            await self.store.create_namespace(new)
            created = Namespace(new)
            self._index(created)
            return created
        description = rr.DescribeNamespaceResponse()
        description.CopyFrom(ns.description)
        config_version = ns.record.config_version
        if record.config_version > config_version:
            config_version = record.config_version
            for part in ("namespace_info", "config"):
                getattr(description, part).CopyFrom(getattr(theirs, part))
            del description.replication_config.clusters[:]
            description.replication_config.clusters.extend(theirs.replication_config.clusters)
            description.replication_config.state = theirs.replication_config.state
        if theirs.failover_version > description.failover_version:
            description.failover_version = theirs.failover_version
            description.replication_config.active_cluster_name = (
                theirs.replication_config.active_cluster_name
            )
            description.replication_config.state = theirs.replication_config.state
            del description.failover_history[:]
            description.failover_history.extend(theirs.failover_history)
        if description == ns.description and config_version == ns.record.config_version:
            return None
        return await self._save(ns, description, config_version)


NOT_MASTER = "Cluster is not master cluster, cannot do namespace registration or namespace update."
MAX_FAILOVER_HISTORY = 10


def _record_failover(description: rr.DescribeNamespaceResponse) -> None:
    """Append the failover version to the history unless it is its last entry (Temporal's
    rule), keeping the last ten."""
    history = description.failover_history
    if not history or history[-1].failover_version != description.failover_version:
        entry = history.add(failover_version=description.failover_version)
        entry.failover_time.FromNanoseconds(now_ns())
    del history[: max(0, len(history) - MAX_FAILOVER_HISTORY)]


def _check_replication_state(
    description: rr.DescribeNamespaceResponse, wanted: replication_pb.NamespaceReplicationConfig
) -> None:
    """Temporal's rules for a change of replication state: only a registered namespace's, and
    HANDOVER only for a global namespace of several clusters."""
    state = description.namespace_info.state
    if state != namespace_pb2.NAMESPACE_STATE_REGISTERED:
        raise errors.InvalidArgument(
            "update ReplicationState is only supported when namespace is in Registered state, "
            f"current state: {_go_name(namespace_pb2.NamespaceState.Name(state))}"
        )
    if wanted.state == namespace_pb2.REPLICATION_STATE_HANDOVER:
        if not description.is_global_namespace:
            raise errors.InvalidArgument("Handover can only be set for global namespace")
        clusters = wanted.clusters or description.replication_config.clusters
        if len(clusters) < 2:
            raise errors.InvalidArgument("Handover require more than one replication clusters")


def _go_name(enum_name: str) -> str:
    """An enum value as Temporal's Go messages print it: `NAMESPACE_STATE_DELETED` -> `Deleted`."""
    return enum_name.removeprefix("NAMESPACE_STATE_").title().replace("_", "")


def _check_retention(retention: Duration) -> None:
    """INVALID_ARGUMENT for a negative retention; one over 100 years is cut to 100 years."""
    if validate_and_cap(retention):
        raise errors.InvalidArgument("A valid retention period is not set on request.")
