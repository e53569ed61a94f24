"""`aion failover-controller`: hybrid automatic failover of a global namespace (issue 21).

Every `--interval` it asks each cluster which one is active for the namespace (the answer with
the highest failover version wins) and checks the active one's health (the gRPC health service,
as `temporal operator cluster health` does). After `--failures` failed checks in a row it fails
the namespace over to another of its clusters, in Temporal Cloud's hybrid mode: first a graceful
handover, run by the active cluster (`aion.replication.v1.Replication/Failover`, mode
`graceful`) and given at most `--graceful-timeout`; if that fails or times out (an active cluster
that is down cannot hand over), a forced failover on the target (`UpdateNamespace` there making
it active). Each failover is printed as a JSON line saying which mode did it and how long it took
from the first failed check; the clusters count and audit it too."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.api.replication.v1 import message_pb2 as replication_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion.common.channels import Channels
from aion.common.durations import GoError, parse_duration
from aion.replication.commands import SECRET_FILE_ENV
from aion.replication.remote import SECRET_HEADER, SERVICE, read_secret

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
WORKFLOW_SERVICE = "temporal.api.workflowservice.v1.WorkflowService"


@dataclass
class Failover:
    """One failover the controller made (its JSON line)."""

    namespace: str
    source_cluster: str
    target_cluster: str
    mode: str  # "graceful", or "forced" once the graceful attempt failed
    failover_version: int
    since_first_failed_check_s: float
    graceful_error: str = ""


class FailoverController:
    """Watches one global namespace's active cluster and fails it over when it is unhealthy."""

    def __init__(
        self,
        namespace: str,
        clusters: dict[str, str],
        interval_s: float = 1.0,
        failures: int = 3,
        graceful_timeout_s: float = 10.0,
        secret: str = "",
        api_key: str = "",
    ) -> None:
        self.namespace = namespace
        self.clusters = clusters  # name -> gRPC address
        self.interval_s = interval_s
        self.failures = failures
        self.graceful_timeout_s = graceful_timeout_s
        self._channels = Channels()
        self._replication_metadata = ((SECRET_HEADER, secret),) if secret else ()
        self._api_metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()

    def _channel(self, address: str) -> grpc.aio.Channel:
        return self._channels.get(address)

    async def close(self) -> None:
        await self._channels.close()

    async def run(self) -> None:
        """Check, and fail over when needed, until cancelled."""
        failed, first_failed = 0, 0.0
        while True:
            started = time.monotonic()
            active = await self.active()
            checked = time.monotonic()  # the health check's own time, not the round's
            if active is None or await self.healthy(active[0]):
                failed = 0
            else:
                failed += 1
                first_failed = first_failed if failed > 1 else checked
                if failed >= self.failures:
                    done = await self.fail_over(active[0], first_failed)
                    if done is not None:
                        print(json.dumps(asdict(done)), flush=True)
                    failed = 0
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def active(self) -> tuple[str, int] | None:
        """(active cluster, failover version) by the reachable clusters' highest version."""
        best: tuple[str, int] | None = None
        for address in self.clusters.values():
            try:
                described = await self._describe(address)
            except grpc.aio.AioRpcError:
                continue
            version = described.failover_version
            if best is None or version > best[1]:
                best = (described.replication_config.active_cluster_name, version)
        return best

    async def _describe(self, address: str) -> rr.DescribeNamespaceResponse:
        call = self._channel(address).unary_unary(
            f"/{WORKFLOW_SERVICE}/DescribeNamespace",
            request_serializer=rr.DescribeNamespaceRequest.SerializeToString,
            response_deserializer=rr.DescribeNamespaceResponse.FromString,
        )
        response: rr.DescribeNamespaceResponse = await call(
            rr.DescribeNamespaceRequest(namespace=self.namespace),
            timeout=self.interval_s,
            metadata=self._api_metadata,
        )
        return response

    async def healthy(self, cluster: str) -> bool:
        address = self.clusters.get(cluster)
        if address is None:
            return True  # not one this controller watches
        stub = health_pb2_grpc.HealthStub(self._channel(address))
        try:
            answer = await stub.Check(
                health_pb2.HealthCheckRequest(service=WORKFLOW_SERVICE), timeout=self.interval_s
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(answer.status == SERVING)

    async def fail_over(self, source: str, first_failed: float) -> Failover | None:
        """Graceful, else forced, to the first other cluster that answers."""
        targets = [name for name in self.clusters if name != source]
        for target in targets:
            graceful_error = ""
            try:
                version = await self._graceful(source, target)
                mode = "graceful"
            except grpc.aio.AioRpcError as e:
                graceful_error = f"{e.code().name}: {e.details()}"
                try:
                    version = await self._forced(target)
                except grpc.aio.AioRpcError as forced_error:
                    log.warning("forced failover to %s failed: %s", target, forced_error.details())
                    continue
                mode = "forced"
            return Failover(
                self.namespace,
                source,
                target,
                mode,
                version,
                round(time.monotonic() - first_failed, 3),
                graceful_error,
            )
        return None

    async def _graceful(self, source: str, target: str) -> int:
        call = self._channel(self.clusters[source]).unary_unary(f"/{SERVICE}/Failover")
        request = {
            "namespace": self.namespace,
            "target": target,
            "mode": "graceful",
            "timeout_s": self.graceful_timeout_s,
        }
        raw = await call(
            json.dumps(request).encode(),
            timeout=self.graceful_timeout_s + 1,
            metadata=self._replication_metadata,
        )
        version: int = json.loads(raw)["failover_version"]
        return version

    async def _forced(self, target: str) -> int:
        call = self._channel(self.clusters[target]).unary_unary(
            f"/{WORKFLOW_SERVICE}/UpdateNamespace",
            request_serializer=rr.UpdateNamespaceRequest.SerializeToString,
            response_deserializer=rr.UpdateNamespaceResponse.FromString,
        )
        request = rr.UpdateNamespaceRequest(
            namespace=self.namespace,
            replication_config=replication_pb.NamespaceReplicationConfig(
                active_cluster_name=target
            ),
        )
        response: rr.UpdateNamespaceResponse = await call(
            request, timeout=10, metadata=self._api_metadata
        )
        return response.failover_version


# ---- `aion failover-controller` -------------------------------------------------------------
def add_parsers(commands: Any) -> None:
    controller = commands.add_parser(
        "failover-controller",
        help="fail a global namespace over when its active cluster is unhealthy (hybrid mode)",
    )
    controller.add_argument("--namespace", "-n", required=True)
    controller.add_argument(
        "--cluster",
        action="append",
        required=True,
        metavar="NAME=HOST:PORT",
        help="a cluster of the namespace and its gRPC address (repeat for each)",
    )
    controller.add_argument("--interval", default="1s", help="between checks (a Go duration)")
    controller.add_argument(
        "--failures", type=int, default=3, help="failed checks in a row before failing over"
    )
    controller.add_argument(
        "--graceful-timeout", default="10s", help="how long the graceful attempt may take"
    )
    controller.add_argument(
        "--replication-secret-file",
        default=os.environ.get(SECRET_FILE_ENV),
        help=f"the clusters' shared secret, if they have one (${SECRET_FILE_ENV})",
    )
    controller.add_argument(
        "--api-key", default="", help="an admin API key of the clusters, if they have auth on"
    )


def run(args: argparse.Namespace) -> None:
    """Run the controller until interrupted."""
    try:
        interval = parse_duration(args.interval) / 1e9
        graceful = parse_duration(args.graceful_timeout) / 1e9
    except GoError as e:
        raise SystemExit(f"failover-controller: {e}") from None
    clusters: dict[str, str] = {}
    for item in args.cluster:
        name, sep, address = item.partition("=")
        if not sep or not name or not address:
            raise SystemExit(f"--cluster {item!r}: expected NAME=HOST:PORT")
        clusters[name] = address
    if len(clusters) < 2:
        raise SystemExit("failover-controller: give at least two --cluster")
    if args.failures < 1:
        raise SystemExit("--failures must be at least 1")
    secret = read_secret(args.replication_secret_file) if args.replication_secret_file else ""
    controller = FailoverController(
        args.namespace, clusters, interval, args.failures, graceful, secret, args.api_key
    )
    print(f"watching namespace {args.namespace} on {', '.join(clusters)}", flush=True)
    try:
        asyncio.run(_run(controller))
    except KeyboardInterrupt:
        sys.exit(0)


async def _run(controller: FailoverController) -> None:
    try:
        await controller.run()
    finally:
        await controller.close()
