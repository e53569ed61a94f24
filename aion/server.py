"""Assembles one Aion server process: store, namespaces, engine, matching, gRPC."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from temporalio.api.operatorservice.v1 import service_pb2 as operator_pb
from temporalio.api.operatorservice.v1 import service_pb2_grpc as operator_grpc
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_pb
from temporalio.api.workflowservice.v1 import service_pb2_grpc as workflow_grpc

from aion import metrics, tracing
from aion.auth import config as auth_config
from aion.auth.config import AuthConfig, TlsConfig
from aion.auth.methods import OPERATOR_SERVICE
from aion.auth.methods import WORKFLOW_SERVICE as WORKFLOW_SERVICE_PREFIX
from aion.auth.tls import ServerCertificates
from aion.batch.runtime import BatchRuntime
from aion.cluster import Cluster
from aion.cluster.peers import peer_handler
from aion.cluster_metadata import ClusterConfig, ClusterMetadata
from aion.common import limits
from aion.common.durations import parse_duration
from aion.common.timeutil import now_ns
from aion.frontend.handlers import add_service
from aion.frontend.health import Health
from aion.frontend.nexus_endpoints import NexusEndpoints
from aion.frontend.operator_service import OperatorService
from aion.frontend.quotas import FrontendQuotas
from aion.frontend.redirection import Redirection
from aion.frontend.rpc import abort
from aion.frontend.workflow_service import Backends, WorkflowService
from aion.history.api import cross_shard, task_polls
from aion.history.engine import HistoryEngine
from aion.history.tasks import processor, transfer
from aion.history.tasks.processor import TaskProcessor
from aion.matching import MatchingEngine, rates
from aion.metrics import event_loop
from aion.namespaces import NamespaceRegistry
from aion.persistence import Store
from aion.persistence.instrumented import instrument
from aion.persistence.sqlite import SQLiteStore
from aion.replication import status as replication_status
from aion.replication.backfill import ReplicationBackfill
from aion.replication.failover import NamespaceFailovers, failover_handler
from aion.replication.history import HistoryReplicator
from aion.replication.namespaces import NamespaceReplicator
from aion.replication.remote import RemoteClusters, read_secret
from aion.replication.service import ReplicationAcks, ReplicationCallers, replication_handler
from aion.schedules.runtime import ScheduleRuntime
from aion.tracing import TracingConfig
from aion.ui import UiConfig
from aion.versioning import drainage
from aion.versioning.registry import DeploymentRegistry

if TYPE_CHECKING:  # imported where they are built, only when their port is set
    from aion.frontend.metrics_port import MetricsPort
    from aion.http import HttpApi
    from aion.ui.server import UiServer

log = logging.getLogger("aion")

# Aion's own: how long a schedule with nothing left to do is kept (a Go duration; Temporal: 7 days).
SCHEDULE_RETENTION = "aion.scheduleRetention"
# Aion's own: how long every closed run is kept, whatever its namespace's retention says (a Go
# duration; for tests and benches).
WORKFLOW_RETENTION = "aion.workflowRetention"
# Aion's own: how far ahead timer tasks are held in memory (a Go duration; default 10 minutes).
TIMER_TASK_WINDOW = "aion.timerTaskWindow"
# Temporal's: a batch operation's default rate (operations per second; 50), and how many batch
# operations a namespace may run at once (1).
BATCHER_RPS = "worker.batcherRPS"
MAX_CONCURRENT_BATCH_OPERATIONS = "frontend.MaxConcurrentBatchOperationPerNamespace"


@dataclass
class ServerConfig:
    """Settings of one server process."""

    ip: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 7233
    """gRPC port."""
    broadcast_address: str | None = None
    """``HOST:PORT`` other server processes use to reach this one; None: ``ip:port``."""
    db_filename: str | None = None
    """SQLite file; None keeps everything in memory. Ignored when `dsn` is set."""
    dsn: str | None = None
    """PostgreSQL connection string (``postgresql://user@host:5432/db``); when set, the server
    stores everything there instead of SQLite."""
    upgrade_schema: bool = True
    """Migrate an older PostgreSQL schema on start. `aion server start` sets False: processes
    sharing the database may still run older code, so it asks for `aion db migrate` instead."""
    namespaces: list[str] = field(default_factory=lambda: ["default"])
    """Namespaces registered at start (if missing)."""
    num_shards: int = 4
    """History shards; fixed for the life of a database."""
    search_attributes: dict[str, int] = field(default_factory=dict)
    """Custom search attributes (name to IndexedValueType) registered at start in each of
    `namespaces` that lacks them."""
    http_port: int | None = None
    """Port on `ip` of Temporal's HTTP API (0: a free one); None: no HTTP API."""
    ui: UiConfig | None = None
    """Temporal's Web UI (over the HTTP API's handler, whether `http_port` is set or not);
    None: no UI."""
    metrics_port: int | None = None
    """HTTP port on `ip` serving `GET /metrics` and `GET /health` (200 while serving, else
    503); None: no such listener."""
    dynamic_config: dict[str, Any] = field(default_factory=dict)
    """The reference's dynamic config values (key to JSON value); honoured: the per-execution
    limits (`aion.common.limits.KEYS`), the frontend's rate limits (`aion.frontend.quotas`) and
    the keys `AionServer.start` names. Others are accepted and ignored."""
    tracing: TracingConfig = field(default_factory=TracingConfig)
    """OpenTelemetry tracing (off unless it or the `OTEL_*` variables turn it on)."""
    auth: AuthConfig | None = None
    """Authentication, authorization and the audit log; None: off, every call allowed."""
    tls: TlsConfig | None = None
    """TLS (and mTLS) on every port, and for the calls between processes; None: plaintext."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """This cluster's identity and global namespace settings (docs/global-namespaces.md)."""


def _timer_window_ns(config: ServerConfig) -> int:
    value = config.dynamic_config.get(TIMER_TASK_WINDOW)
    return processor.WINDOW_NS if value is None else parse_duration(value)


def _by_namespace(counts: dict[str, int]) -> list[tuple[tuple[str, str], float]]:
    """A per-namespace gauge's samples: (namespace name, service) and the count."""
    return [((metrics.namespace_name(ns_id), "history"), n) for ns_id, n in counts.items()]


class AionServer:
    """One running server: `start()`, then `stop()`."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        if config.metrics_port is not None:
            metrics.enable()
        self.store: Store
        if config.dsn:
            from aion.persistence.postgres import PostgresStore  # asyncpg only when needed

            self.store = PostgresStore(config.dsn, upgrade_schema=config.upgrade_schema)
        else:
            self.store = SQLiteStore(config.db_filename or ":memory:")
        tracing.setup(config.tracing)
        instrument(self.store, tracing.ACTIVE.store_span if tracing.ACTIVE else None)
        self.address = f"{config.ip}:{config.port}"
        self.clusters = ClusterMetadata(
            self.store, config.cluster, config.num_shards, config.broadcast_address or self.address
        )
        self.namespaces = NamespaceRegistry(self.store, self.clusters)
        self.deployments = DeploymentRegistry(self.store, now_ns)
        self.matching = MatchingEngine(routing=self.deployments, dispatch_rps=self._dispatch_rps)
        self.deployments.on_routing_changed = self.matching.routing_changed
        host_id = str(uuid.uuid4())
        self.certificates = None if config.tls is None else ServerCertificates(config.tls)
        cluster = config.cluster
        secret = (
            read_secret(cluster.replication_secret_file) if cluster.replication_secret_file else ""
        )
        self.remote_clusters = RemoteClusters(
            self.clusters,
            self._remote_credentials if cluster.remote_tls_ca_file else None,
            secret,
        )
        self.replication_callers = ReplicationCallers(secret, config.auth is not None)
        ssl_context = None if self.certificates is None else self.certificates.ssl_context()
        self.cluster: Cluster | None = None
        if self.store.shared:  # several processes share the database
            self.cluster = Cluster(
                self.store,
                host_id,
                config.broadcast_address or self.address,
                config.num_shards,
                on_tick=self._take_in_changes,
                peer_credentials=self._peer_credentials if config.tls else None,
            )
        self.engine = HistoryEngine(
            self.store,
            self.namespaces,
            self.matching,
            functools.partial(TaskProcessor, window_ns=_timer_window_ns(config)),
            {**cross_shard.OPS, **transfer.OPS, **task_polls.OPS},
            config.num_shards,
            host_id=host_id,
            remote=self.cluster,
            deployments=self.deployments,
        )
        limits.apply(self.engine.limits, config.dynamic_config)
        self.namespaces.search_attributes.limits = self.engine.limits
        self.schedules = ScheduleRuntime(self.engine, self.store)
        self.engine.add_shard_listener(self.schedules)
        self.engine.add_operations(self.schedules.operations())
        self.batches = BatchRuntime(self.engine, self.store)
        self.engine.add_shard_listener(self.batches)
        self.engine.add_operations(self.batches.operations())
        self.history_replicator = HistoryReplicator(self.engine, self.remote_clusters)
        self.engine.add_operations(self.history_replicator.operations())
        self.replication_acks = ReplicationAcks(self.clusters, self.store)
        self.replication_backfill = ReplicationBackfill(self.engine)
        if config.cluster.enable_global_namespace:
            self.engine.add_shard_listener(self.history_replicator)
            self.namespaces.replication_widened = self.replication_backfill.widened
        self.namespace_replicator = NamespaceReplicator(
            self.namespaces, self.remote_clusters, self.history_replicator.catch_up
        )
        self.drainage = drainage.DrainageMonitor(self.engine, self.deployments, self.store)
        self.grpc = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 128 * 1024 * 1024),
                ("grpc.max_send_message_length", 128 * 1024 * 1024),
            ]
        )
        self.workflow_service = WorkflowService(
            Backends(
                self.engine,
                self.namespaces,
                self.matching,
                self.store,
                self.schedules,
                self.deployments,
                config.broadcast_address or self.address,
                self.batches,
            )
        )
        self.workflow_service.quotas = FrontendQuotas(
            config.dynamic_config,
            known=lambda name: self.namespaces.id_of(name) is not None,
            members=self._cluster_size,
        )
        add_service(
            self.grpc,
            self.workflow_service,
            workflow_pb.DESCRIPTOR.services_by_name["WorkflowService"],
            workflow_grpc.WorkflowServiceServicer,
        )
        self.health = Health()
        self.health.add_to(self.grpc)
        self.metrics_port: MetricsPort | None = None
        self._open_executions: dict[str, int] = {}
        self._dlq_sizes: dict[tuple[str, int], int] = {}
        self._replication_lag: list[tuple[str, int]] = []
        self._set_aside_branches: dict[str, int] = {}  # per global namespace id
        self._loop_watch: asyncio.Task[None] | None = None
        if config.metrics_port is not None:
            from aion.frontend.metrics_port import MetricsPort  # aiohttp only when needed

            self.metrics_port = MetricsPort(
                config.ip, config.metrics_port, self.health, self._refresh_gauges, ssl_context
            )
            self._register_gauges()
        self.operator_service = OperatorService(
            self.namespaces, self.remote_clusters, NexusEndpoints(self.store, self.namespaces)
        )
        add_service(
            self.grpc,
            self.operator_service,
            operator_pb.DESCRIPTOR.services_by_name["OperatorService"],
            operator_grpc.OperatorServiceServicer,
        )
        self.http: HttpApi | None = None
        self.ui: UiServer | None = None
        if config.http_port is not None or config.ui is not None:
            from aion.http import HttpApi  # aiohttp only when needed
            from aion.ui.server import UiServer

            api = HttpApi(
                {
                    "temporal.api.workflowservice.v1.WorkflowService": self.workflow_service,
                    "temporal.api.operatorservice.v1.OperatorService": self.operator_service,
                }
            )
            if config.http_port is not None:
                self.http = api
            if config.ui is not None:
                self.ui = UiServer(config.ui, api, ssl_context)
        self.security: auth_config.Security | None = None
        if config.auth is not None:
            from aion.auth import admin as auth_admin  # the auth modules only when auth is on

            self.security = security = auth_config.build(config.auth, self.store)
            self.workflow_service.guard = security.guard.service(WORKFLOW_SERVICE_PREFIX)
            self.operator_service.guard = security.guard.service(OPERATOR_SERVICE)
            ops = auth_admin.AdminOps(self.store, security.api_keys, security.audit)
            self.grpc.add_generic_rpc_handlers(
                (auth_admin.admin_handler(ops, security.guard, abort),)
            )
        if self.cluster is not None:
            self.grpc.add_generic_rpc_handlers(
                (peer_handler(self.engine, self.engine.operations, abort, self.cluster.peers),)
            )
        self.grpc.add_generic_rpc_handlers(
            (
                replication_handler(
                    self.namespaces,
                    self.store,
                    self.replication_acks,
                    self.history_replicator,
                    self.remote_clusters,
                    self.replication_callers,
                ),
            )
        )
        failovers = NamespaceFailovers(
            self.namespaces,
            self.store,
            self.remote_clusters,
            self.security.audit if self.security is not None else None,
        )
        self.grpc.add_generic_rpc_handlers(
            (failover_handler(failovers, self.store, self.replication_callers),)
        )
        if config.cluster.enable_global_namespace:
            self.workflow_service.redirection = Redirection(
                self.namespaces, self.remote_clusters, self.matching
            )

    def _peer_credentials(self) -> grpc.ChannelCredentials:
        assert self.certificates is not None and self.config.tls is not None
        tls = self.config.tls
        return self.certificates.channel_credentials(tls.peer_ca_file or tls.client_ca_file)

    def _remote_credentials(self) -> grpc.ChannelCredentials:
        """TLS to another cluster: its certificate checked against the configured CA, this
        server's own (if it has one) shown as the client certificate."""
        ca_file = self.config.cluster.remote_tls_ca_file
        if self.certificates is not None:
            return self.certificates.channel_credentials(ca_file)
        with open(ca_file, "rb") as f:
            return grpc.ssl_channel_credentials(f.read())

    def _dispatch_rps(self, namespace_id: str, task_queue: str, kind: str) -> float:
        try:
            name = self.namespaces.by_id(namespace_id).name
        except KeyError:  # deleted meanwhile: only the unconstrained values apply
            name = ""
        return rates.system_dispatch_rps(self.config.dynamic_config, name, task_queue, kind)

    def _cluster_size(self) -> int:
        return 1 if self.cluster is None else len(self.cluster.membership.hosts)

    def _register_gauges(self) -> None:
        """The gauges read at each scrape; the store's methods measured from now on."""
        metrics.read_gauge(
            "numshards_gauge",
            ("operation", "service_name"),
            lambda: [(("ShardController", "history"), len(self.engine.shards))],
        )
        backlog = self.matching.backlog_gauges
        metrics.read_gauge(
            "approximate_backlog_count",
            metrics.BACKLOG_COUNT_LABELS,
            lambda: [((*ls[:5], "3", *ls[5:]), count) for ls, count, _ in backlog()],
        )
        metrics.read_gauge(
            "approximate_backlog_age_seconds",
            metrics.QUEUE_LABELS,
            lambda: [(ls, age) for ls, _, age in backlog()],
        )
        metrics.read_gauge(
            "replication_tasks_lag",
            ("target_cluster", "service_name"),
            lambda: [((cluster, "history"), lag) for cluster, lag in self._replication_lag],
        )
        metrics.read_gauge(
            "replication_dlq_non_empty",
            metrics.REPLICATION_DLQ_LABELS,
            lambda: [
                (
                    (metrics.REPLICATION_DLQ_OPERATION, "history", remote.name),
                    float(any(source == remote.name for source, _ in self._dlq_sizes)),
                )
                for remote in self.clusters.remotes()
                if remote.replication_enabled
            ],
        )
        metrics.read_gauge(
            "aion_replication_branches_set_aside",
            ("namespace", "service_name"),
            lambda: _by_namespace(self._set_aside_branches),
        )
        metrics.read_gauge(
            "aion_store_connections",
            ("service_name", "state"),
            lambda: zip(
                (("history", "in_use"), ("history", "open")), self.store.connections(), strict=True
            ),
        )
        metrics.read_gauge(
            "aion_open_workflow_executions",
            ("namespace", "service_name"),
            lambda: _by_namespace(self._open_executions),
        )

    async def _refresh_gauges(self) -> None:
        """Count the running executions per namespace, the replication DLQ's tasks, the
        replication lag and the hidden branches set aside (in the store: every process's)."""
        if not self.health.serving:  # the store is not open (yet, or any more)
            return
        counts = await self.store.count_open_executions()
        if self.config.cluster.enable_global_namespace:
            self._dlq_sizes = await self.store.replication_dlq_sizes()
            self._replication_lag = await replication_status.lag(self.store, self.clusters)
            set_aside = await self.store.set_aside_branch_counts()
            self._set_aside_branches = {
                ns.id: set_aside.get(ns.id, 0) for ns in self.namespaces.all() if ns.is_global
            }
        self._open_executions = {ns.id: counts.get(ns.id, 0) for ns in self.namespaces.all()}

    async def _take_in_changes(self) -> None:
        """Take in the connected clusters, namespaces, search attributes and worker deployments
        other processes sharing the database made (after every heartbeat)."""
        await self.clusters.load()
        await self.namespaces.load()
        await self.namespaces.reap_deleted()
        await self.deployments.refresh()

    async def start(self) -> None:
        if self.metrics_port is not None:  # answers 503 until the shards are served
            await self.metrics_port.start()
            self._loop_watch = asyncio.get_running_loop().create_task(event_loop.watch())
        await self.store.open()
        await self.store.check_shard_count(self.config.num_shards)
        await self.clusters.load()
        await self.namespaces.load()
        await self.namespaces.reap_deleted()  # marked before a crash
        await self.deployments.refresh()
        for name in self.config.namespaces:
            ns = await self.namespaces.ensure(name)
            if self.config.search_attributes:
                await self.namespaces.search_attributes.add(ns.id, self.config.search_attributes)
        for key, value in self.config.dynamic_config.items():
            if key in limits.KEYS:
                pass  # read where the engine is built
            elif key == WORKFLOW_RETENTION:
                self.engine.retention_override_ns = parse_duration(value)
            elif key == TIMER_TASK_WINDOW:
                pass  # read where the task processor is built
            elif key == SCHEDULE_RETENTION:
                self.schedules.retention = dt.timedelta(microseconds=parse_duration(value) // 1000)
            elif key == BATCHER_RPS:
                self.batches.rps = float(value)
            elif key == MAX_CONCURRENT_BATCH_OPERATIONS:
                self.batches.max_concurrent = int(value)
            elif key == drainage.REFRESH_INTERVAL:
                self.drainage.refresh_interval_ns = parse_duration(value)
            elif key == drainage.GRACE_PERIOD:
                self.drainage.grace_period_ns = parse_duration(value)
            else:
                log.debug("dynamic config value %s is not supported yet; ignored", key)
        if self.certificates is not None:
            bound = self.grpc.add_secure_port(self.address, self.certificates.grpc_credentials())
        else:
            bound = self.grpc.add_insecure_port(self.address)
        if bound == 0:
            raise OSError(f"cannot listen on {self.address}")
        if self.cluster is not None:
            await self.cluster.start(self.engine)  # takes this process's share of the shards
        else:  # the only process on its database: every shard is ours
            for shard_id in range(self.config.num_shards):
                await self.engine.acquire_shard(shard_id)
        await self.engine.start()
        self.drainage.start()
        if self.security is not None and self.security.audit is not None:
            self.security.audit.start()
        await self.health.set_serving(True)
        await self.grpc.start()
        if self.http is not None:
            assert self.config.http_port is not None
            ssl_context = None if self.certificates is None else self.certificates.ssl_context()
            await self.http.start(self.config.ip, self.config.http_port, ssl_context)
        if self.ui is not None:
            await self.ui.start()
        if self.config.cluster.enable_global_namespace:
            self.namespace_replicator.start()

    async def stop(self) -> None:
        await self.health.set_serving(False)
        if self.ui is not None:
            await self.ui.stop()
        if self.http is not None:
            await self.http.stop()
        await self.namespace_replicator.stop()
        await self.history_replicator.stop()
        await self.replication_backfill.stop()
        await self.grpc.stop(grace=1.0)
        await self.remote_clusters.close()
        await self.operator_service.stop()
        await self.drainage.stop()
        if self.cluster is not None:
            await self.cluster.stop()  # the others take our shards at once
        await self.engine.stop()
        await self.schedules.stop()
        await self.batches.stop()
        if self.security is not None and self.security.audit is not None:
            await self.security.audit.stop()
        await self.store.close()
        if self.metrics_port is not None:
            await self.metrics_port.stop()
        if self._loop_watch is not None:
            self._loop_watch.cancel()
        await asyncio.to_thread(tracing.shutdown)  # exports the spans still buffered
