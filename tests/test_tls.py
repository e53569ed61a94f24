"""TLS and mTLS on the gRPC port: client certificates signed by the configured CA, their
subject mapped to roles (`--tls-permission`), the official SDK and the `temporal` CLI with
certificates made here with `cryptography`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, TLSConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.auth_support import NAMESPACE, Pki
from tests.helpers import Storage, unique
from tests.servers import AionProcess


@pytest.fixture
async def tls_server(storage: Storage, tmp_path: Path) -> AsyncIterator[tuple[AionProcess, Pki]]:
    pki = Pki.create(tmp_path)
    cert, key = pki.issue("localhost", server=True)
    server = storage.server(
        extra_args=[
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-client-ca-file",
            pki.ca_path,
            "--tls-permission",
            f"worker-client={NAMESPACE}:worker",
            "--tls-permission",
            f"app-client={NAMESPACE}:writer",
        ]
    )
    await asyncio.to_thread(server.start)
    try:
        yield server, pki
    finally:
        await asyncio.to_thread(server.stop)


async def _connect(server: AionProcess, pki: Pki, name: str | None) -> Client:
    tls = TLSConfig(server_root_ca_cert=Path(pki.ca_path).read_bytes(), domain="localhost")
    if name is not None:
        cert, key = pki.issue(name)
        tls.client_cert = Path(cert).read_bytes()
        tls.client_private_key = Path(key).read_bytes()
    return await Client.connect(server.address, tls=tls)


@activity.defn
async def double(n: int) -> int:
    return 2 * n


@workflow.defn
class Doubling:
    @workflow.run
    async def run(self, n: int) -> int:
        return await workflow.execute_activity(
            double, n, start_to_close_timeout=timedelta(seconds=30)
        )


async def test_sdk_with_client_certificates(tls_server: tuple[AionProcess, Pki]) -> None:
    server, pki = tls_server
    worker_client = await _connect(server, pki, "worker-client")
    client = await _connect(server, pki, "app-client")
    queue = unique("mtls-q")
    async with Worker(
        worker_client,
        task_queue=queue,
        workflows=[Doubling],
        activities=[double],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        assert (
            await client.execute_workflow(Doubling.run, 21, id=unique("mtls"), task_queue=queue)
            == 42
        )
    stranger = await _connect(server, pki, "stranger")  # a valid certificate with no role
    with pytest.raises(RPCError) as denied:
        await stranger.start_workflow(Doubling.run, 1, id=unique("no"), task_queue=queue)
    assert denied.value.status == RPCStatusCode.PERMISSION_DENIED
    with pytest.raises(RuntimeError):  # no client certificate: no connection at all
        await _connect(server, pki, None)


async def test_temporal_cli_with_client_certificates(tls_server: tuple[AionProcess, Pki]) -> None:
    server, pki = tls_server
    cert, key = pki.issue("app-client")
    temporal = str(Path(sys.executable).parent / "temporal")
    workflow_id = unique("mtls-cli")
    tls = ["--tls-cert-path", cert, "--tls-key-path", key, "--tls-ca-path", pki.ca_path]
    tls += ["--tls-server-name", "localhost"]
    args = [temporal, "workflow", "start", "--type", "T", "--task-queue", "q", "-w", workflow_id]
    result = await asyncio.to_thread(
        subprocess.run, [*args, "--address", server.address, *tls], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    described = await asyncio.to_thread(
        subprocess.run,
        [temporal, "workflow", "describe", "-w", workflow_id, "--address", server.address, *tls],
        capture_output=True,
        text=True,
    )
    assert described.returncode == 0 and workflow_id in described.stdout
