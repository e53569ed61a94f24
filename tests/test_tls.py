"""TLS and mTLS on every port (gRPC, HTTP API, Web UI, metrics): client certificates signed by
the configured CA, their subject mapped to roles (`--tls-permission`) over gRPC and HTTP alike,
the official SDK and the `temporal` CLI with certificates made here with `cryptography`, and
certificate files rotated under a running server."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, TLSConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.auth_support import NAMESPACE, Pki
from tests.helpers import Storage, unique
from tests.servers import AionProcess, free_port


@pytest.fixture
async def tls_server(storage: Storage, tmp_path: Path) -> AsyncIterator[tuple[AionProcess, Pki]]:
    pki = Pki.create(tmp_path)
    cert, key = pki.issue("localhost", server=True)
    server = storage.server(
        ui=True,
        extra_args=[
            "--metrics-port",
            str(free_port()),
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
        ],
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


def _client_context(pki: Pki, name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca_path)
    if name is not None:
        context.load_cert_chain(*pki.issue(name))
    return context


def _metrics_url(server: AionProcess) -> str:
    port = server.extra_args[server.extra_args.index("--metrics-port") + 1]
    return f"https://localhost:{port}"


async def _get(url: str, context: ssl.SSLContext) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url, ssl=context) as response:
        return response.status, await response.text()


async def test_http_ui_and_metrics_ports_with_client_certificates(
    tls_server: tuple[AionProcess, Pki],
) -> None:
    server, pki = tls_server
    http = server.http_url.replace("127.0.0.1", "localhost")
    ui = server.ui_url.replace("127.0.0.1", "localhost")
    assert http.startswith("https://") and ui.startswith("https://")
    writer, stranger = _client_context(pki, "app-client"), _client_context(pki, "stranger")
    workflows = f"/api/v1/namespaces/{NAMESPACE}/workflows"
    # The certificate is the caller's identity on HTTP as on gRPC: its role, or none.
    assert (await _get(http + workflows, writer))[0] == 200
    status, body = await _get(http + workflows, stranger)
    assert status == 403 and "Request unauthorized." in body
    assert (await _get(ui + workflows, writer))[0] == 200
    assert (await _get(ui + workflows, stranger))[0] == 403
    assert (await _get(ui + "/api/v1/settings", writer))[0] == 200
    status, body = await _get(_metrics_url(server) + "/health", writer)
    assert (status, body) == (200, "SERVING\n")
    for url in (http + workflows, ui + "/api/v1/settings", _metrics_url(server) + "/metrics"):
        with pytest.raises(aiohttp.ClientError):  # no client certificate: no connection
            await _get(url, _client_context(pki, None))


def _served_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The certificate the server shows a new connection (DER)."""
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as connection,
    ):
        certificate = connection.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def _der(path: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(Path(path).read_text())


async def test_rotated_certificate_files_serve_new_connections(
    tls_server: tuple[AionProcess, Pki], tmp_path: Path
) -> None:
    server, pki = tls_server
    client = _client_context(pki, "app-client")
    ports = {
        "gRPC": server.port,
        "HTTP": int(server.http_url.rsplit(":", 1)[1]),
        "metrics": int(_metrics_url(server).rsplit(":", 1)[1]),
    }
    old = _der(str(pki.directory / "localhost.pem"))
    for port in ports.values():
        assert await asyncio.to_thread(_served_certificate, port, client) == old

    # A new certificate (same name, new key), put in place as a deployment would: each file
    # replaced at once.
    staging = tmp_path / "staging"
    staging.mkdir()
    new_cert, new_key = Pki(staging, pki.ca_key, pki.ca_cert).issue("localhost", server=True)
    os.replace(new_key, pki.directory / "localhost.key")
    os.replace(new_cert, pki.directory / "localhost.pem")
    new = _der(str(pki.directory / "localhost.pem"))
    assert new != old
    for name, port in ports.items():
        served = await asyncio.to_thread(_served_certificate, port, client)
        assert served == new, f"the {name} port still serves the old certificate"
    # Connections made after the rotation work end to end.
    sdk = await _connect(server, pki, "app-client")
    await sdk.count_workflows()
    assert (
        await _get(
            server.http_url.replace("127.0.0.1", "localhost") + "/api/v1/namespaces/"
            f"{NAMESPACE}/workflows",
            client,
        )
    )[0] == 200
