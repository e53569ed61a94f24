"""Cluster metadata, as Temporal keeps it: this cluster's identity (its name, its failover
versions, whether it serves global namespaces, which cluster is the master) and the clusters it is
connected to (AddOrUpdateRemoteCluster), with the failover version arithmetic they share."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from temporalio.api.operatorservice.v1.request_response_pb2 import ClusterMetadata as ClusterInfo

from aion import errors
from aion.persistence import RemoteClusterRecord, Store

# Temporal's redirection policies (`dcRedirectionPolicy`) that Aion implements.
NOOP = "noop"
SELECTED_APIS_FORWARDING = "selected-apis-forwarding"
REDIRECTION_POLICIES = (NOOP, SELECTED_APIS_FORWARDING)
_INVALID_REMOTE = "Unable connect to remote cluster with invalid config: "


@dataclass(frozen=True)
class ClusterConfig:
    """This cluster's identity and cross-cluster settings (defaults: Temporal's dev server)."""

    name: str = "active"
    enable_global_namespace: bool = False
    failover_version_increment: int = 10
    initial_failover_version: int = 1
    master_cluster_name: str = ""
    """The cluster that registers global namespaces; "": this one."""
    address: str = ""
    """``HOST:PORT`` where other clusters reach this one; "": the server's broadcast address."""
    redirection_policy: str = NOOP
    """`selected-apis-forwarding`: a standby forwards Temporal's selected calls to the active
    cluster; `noop`: it answers NamespaceNotActive."""
    replication_secret_file: str = ""
    """A file holding the secret the connected clusters share: the replication service
    answers only calls carrying it, and this cluster sends it on its calls to the others.
    "": the service answers anyone, unless the server has auth on (then no one)."""
    remote_tls_ca_file: str = ""
    """TLS on the calls to other clusters, their certificates checked against this CA (this
    server's own certificate, `[tls]`, shown as the client certificate); "": plaintext."""

    def problem(self) -> str | None:
        """What is wrong with these settings, in one line; None if nothing."""
        if not self.name:
            return "the cluster name must not be empty"
        if self.failover_version_increment < 1:
            return "failover_version_increment must be at least 1"
        if not 0 < self.initial_failover_version < self.failover_version_increment:
            return (
                f"initial_failover_version ({self.initial_failover_version}) must be above 0 and "
                f"below failover_version_increment ({self.failover_version_increment})"
            )
        if self.redirection_policy not in REDIRECTION_POLICIES:
            return f"redirection_policy must be one of {', '.join(REDIRECTION_POLICIES)}"
        return None


class ClusterMetadata:
    """This cluster and the clusters connected to it (the `remote_clusters` table)."""

    def __init__(self, store: Store, config: ClusterConfig, num_shards: int, address: str) -> None:
        self.store = store
        self.config = config
        self.num_shards = num_shards
        self.address = config.address or address
        self.cluster_id = ""
        self._remotes: dict[str, RemoteClusterRecord] = {}

    async def load(self) -> None:
        """Read this cluster's id (recorded on first start) and the connected clusters."""
        if not self.cluster_id:
            self.cluster_id = await self.store.cluster_id(str(uuid.uuid4()))
        self._remotes = {r.name: r for r in await self.store.list_remote_clusters()}

    @property
    def current_name(self) -> str:
        return self.config.name

    @property
    def global_namespace_enabled(self) -> bool:
        return self.config.enable_global_namespace

    @property
    def is_master(self) -> bool:
        master = self.config.master_cluster_name
        return not master or master == self.config.name

    @property
    def forwarding(self) -> bool:
        return self.config.redirection_policy == SELECTED_APIS_FORWARDING

    def remote(self, name: str) -> RemoteClusterRecord | None:
        return self._remotes.get(name)

    def remotes(self) -> list[RemoteClusterRecord]:
        return list(self._remotes.values())

    def is_enabled(self, name: str) -> bool:
        """Whether `name` is this cluster or a connected one with its connection enabled."""
        remote = self._remotes.get(name)
        return name == self.current_name or (remote is not None and remote.connection_enabled)

    def next_failover_version(self, cluster: str, current_version: int) -> int:
        """The failover version making `cluster` active after `current_version`: the smallest
        one at or above it that `cluster` owns (its initial version modulo the increment)."""
        increment = self.config.failover_version_increment
        version = current_version // increment * increment + self._initial_version(cluster)
        return version + increment if version < current_version else version

    def owner_of(self, version: int) -> str:
        """The cluster that writes at failover `version` (its initial version is the version
        modulo the increment); "" if none known does."""
        initial = version % self.config.failover_version_increment
        if initial == self.config.initial_failover_version:
            return self.current_name
        owners = [r.name for r in self._remotes.values() if r.initial_failover_version == initial]
        return owners[0] if owners else ""

    def _initial_version(self, cluster: str) -> int:
        if cluster == self.current_name:
            return self.config.initial_failover_version
        return self._remotes[cluster].initial_failover_version

    def identity(self) -> RemoteClusterRecord:
        """This cluster as another one records it (the connection flags are that one's)."""
        return RemoteClusterRecord(
            name=self.current_name,
            cluster_id=self.cluster_id,
            address=self.address,
            http_address="",
            initial_failover_version=self.config.initial_failover_version,
            failover_version_increment=self.config.failover_version_increment,
            history_shard_count=self.num_shards,
            global_namespace_enabled=self.config.enable_global_namespace,
            connection_enabled=True,
            replication_enabled=True,
        )

    def check_remote(self, info: RemoteClusterRecord) -> None:
        """INVALID_ARGUMENT, with Temporal's message, unless the cluster `info` describes may be
        connected to this one."""
        if info.name == self.current_name:
            problem = "Cannot update current cluster metadata from rpc calls"
        elif info.failover_version_increment != self.config.failover_version_increment:
            problem = "Cannot add remote cluster due to failover version increment mismatch"
        elif info.history_shard_count <= 0:
            problem = "Remote cluster HistoryShardCount must be positive"
        elif (
            max(info.history_shard_count, self.num_shards)
            % min(info.history_shard_count, self.num_shards)
            != 0
        ):
            problem = (
                "Remote cluster shard number and local cluster shard number are not multiples."
            )
        elif not info.global_namespace_enabled:
            problem = "Cannot add remote cluster as global namespace is not supported"
        elif info.initial_failover_version in self._versions_in_use(info.name):
            problem = "Cannot add remote cluster due to initial failover version conflict"
        else:
            return
        raise errors.InvalidArgument(_INVALID_REMOTE + problem + ".")

    def _versions_in_use(self, except_cluster: str) -> set[int]:
        versions = {self.config.initial_failover_version}
        versions.update(
            r.initial_failover_version for r in self._remotes.values() if r.name != except_cluster
        )
        return versions

    async def save_remote(self, record: RemoteClusterRecord) -> None:
        await self.store.save_remote_cluster(record)
        self._remotes[record.name] = record

    def check_removable(self, name: str) -> None:
        """INVALID_ARGUMENT for this cluster, NOT_FOUND for one not connected."""
        if name == self.current_name:
            raise errors.InvalidArgument(
                "Unable to delete cluster info with error: Cannot delete current cluster metadata."
            )
        if name not in self._remotes:
            raise errors.NotFound("The cluster to be deleted cannot be found in clusters cache.")

    async def remove_remote(self, name: str) -> None:
        """Forget a connected cluster."""
        await self.store.delete_remote_cluster(name)
        del self._remotes[name]

    def cluster_list(self) -> list[ClusterInfo]:
        """ListClusters: this cluster, then the connected ones by name."""
        current = ClusterInfo(
            cluster_name=self.current_name,
            cluster_id=self.cluster_id,
            address=self.address,
            initial_failover_version=self.config.initial_failover_version,
            history_shard_count=self.num_shards,
            is_connection_enabled=True,
        )
        return [current] + [
            ClusterInfo(
                cluster_name=r.name,
                cluster_id=r.cluster_id,
                address=r.address,
                http_address=r.http_address,
                initial_failover_version=r.initial_failover_version,
                history_shard_count=r.history_shard_count,
                is_connection_enabled=r.connection_enabled,
                is_replication_enabled=r.replication_enabled,
            )
            for r in sorted(self._remotes.values(), key=lambda r: r.name)
        ]
