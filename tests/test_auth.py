"""Auth on a real server (docs/security.md): the role matrix over gRPC and HTTP for a
representative set of methods (tests/unit/test_authorization.py covers every method), API keys
made and revoked with `aion apikey`, the official SDK and the `temporal` CLI with keys, JWTs, and
the audit log across a restart."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import biscuit_auth
import grpc
import pytest
from google.protobuf.message import Message
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.operatorservice.v1 import request_response_pb2 as orr
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from aion.common.timeutil import now_ns
from aion.persistence import AuditRecord, Store
from aion.persistence.postgres import PostgresStore
from aion.persistence.sqlite import SQLiteStore
from tests.auth_support import (
    AUDIENCE,
    CALLERS,
    ISSUER,
    NAMESPACE,
    TokenIssuer,
    aion_cli,
    created_key,
    expected,
)
from tests.helpers import Storage, fresh_storage, unique
from tests.servers import AionProcess

WF = "/temporal.api.workflowservice.v1.WorkflowService/"
OP = "/temporal.api.operatorservice.v1.OperatorService/"
ADMIN = "/aion.admin.v1.AdminService/"
UNAUTHORIZED = "Request unauthorized."


@dataclass
class AuthServer:
    server: AionProcess
    storage_args: list[str]
    issuer: TokenIssuer
    admin_key: str
    biscuit_root: biscuit_auth.KeyPair
    keys: dict[str, str] = field(default_factory=dict)  # caller -> key
    secrets: list[str] = field(default_factory=list)  # every key and token handed out

    @property
    def address(self) -> str:
        return self.server.address

    def cli(self, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        return aion_cli(*args, "--address", self.address, "--api-key", key or self.admin_key)

    def create_key(self, namespace: str, role: str, *extra: str) -> str:
        key = created_key(self.cli("apikey", "create", "-n", namespace, "--role", role, *extra))
        self.secrets.append(key)
        return key

    def token(self, permissions: list[str], **overrides: Any) -> str:
        token = self.issuer.token(permissions, **overrides)
        self.secrets.append(token)
        return token


@pytest.fixture(scope="module")
async def auth_server(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AuthServer]:
    tmp = tmp_path_factory.mktemp("auth")
    async with fresh_storage(backend, str(tmp / "aion.db")) as storage:
        storage_args = (
            ["--dsn", storage.dsn] if storage.dsn else ["--db-filename", str(storage.db_filename)]
        )
        # The first system admin key: made on the database itself, before the server runs.
        admin_key = created_key(
            aion_cli("apikey", "create", "-n", "temporal-system", "--role", "admin", *storage_args)
        )
        issuer = TokenIssuer.create(tmp / "jwks.json")
        biscuit_root = biscuit_auth.KeyPair()
        server = storage.server(
            namespaces=["other"],
            extra_args=[
                "--auth",
                "--jwt-jwks",
                str(tmp / "jwks.json"),
                "--jwt-issuer",
                ISSUER,
                "--jwt-audience",
                AUDIENCE,
                "--biscuit-root-key",
                biscuit_root.public_key.to_bytes().hex(),
                "--log-level",
                "info",
            ],
        )
        await asyncio.to_thread(server.start)
        auth = AuthServer(
            server, storage_args, issuer, admin_key, biscuit_root, secrets=[admin_key]
        )
        try:
            for caller, held in CALLERS.items():
                if held is not None:
                    auth.keys[caller] = await asyncio.to_thread(auth.create_key, *held)
            yield auth
        finally:
            await asyncio.to_thread(server.stop)


# ---- the matrix, over gRPC and HTTP -----------------------------------------------------------


def _requests() -> dict[str, Message]:
    return {
        WF + "GetSystemInfo": rr.GetSystemInfoRequest(),
        WF + "ListNamespaces": rr.ListNamespacesRequest(),
        WF + "DescribeNamespace": rr.DescribeNamespaceRequest(namespace=NAMESPACE),
        WF + "StartWorkflowExecution": rr.StartWorkflowExecutionRequest(
            namespace=NAMESPACE,
            workflow_id=unique("matrix"),
            workflow_type=WorkflowType(name="Nothing"),
            task_queue=TaskQueue(name="matrix"),
            request_id=str(uuid.uuid4()),
        ),
        WF + "RecordActivityTaskHeartbeat": rr.RecordActivityTaskHeartbeatRequest(
            namespace=NAMESPACE, task_token=b"not a token"
        ),
        WF + "UpdateNamespace": rr.UpdateNamespaceRequest(namespace=NAMESPACE),
        OP + "ListSearchAttributes": orr.ListSearchAttributesRequest(namespace=NAMESPACE),
        OP + "AddSearchAttributes": orr.AddSearchAttributesRequest(namespace=NAMESPACE),
    }


def _credentials(auth: AuthServer) -> dict[str, tuple[str | None, str]]:
    """Caller -> (bearer credential, the caller whose rights it should have)."""
    creds: dict[str, tuple[str | None, str]] = {
        caller: (auth.keys.get(caller), caller) for caller in CALLERS
    }
    creds["jwt-writer"] = (auth.token([f"{NAMESPACE}:write"]), "writer")
    creds["jwt-system-admin"] = (auth.token(["temporal-system:admin"]), "system-admin")
    return creds


def _outcome(code: grpc.StatusCode, message: str) -> str:
    if code == grpc.StatusCode.UNAUTHENTICATED:
        assert message == UNAUTHORIZED
        return "unauthenticated"
    if code == grpc.StatusCode.PERMISSION_DENIED:
        assert message == UNAUTHORIZED
        return "denied"
    return "allow"


async def _grpc_call(channel: grpc.aio.Channel, method: str, request: Any, key: str | None) -> str:
    call = channel.unary_unary(
        method,
        request_serializer=lambda m: (
            m.SerializeToString() if isinstance(m, Message) else json.dumps(m).encode()
        ),
        response_deserializer=lambda raw: raw,
    )
    metadata = [("authorization", f"Bearer {key}")] if key else []
    try:
        await call(request, metadata=metadata, timeout=30)
    except grpc.aio.AioRpcError as e:
        return _outcome(e.code(), e.details() or "")
    return "allow"


async def test_matrix_over_grpc(auth_server: AuthServer) -> None:
    wrong = []
    async with grpc.aio.insecure_channel(auth_server.address) as channel:
        for name, (key, rights) in _credentials(auth_server).items():
            requests: dict[str, Any] = {**_requests(), ADMIN + "ListApiKeys": {}}
            for method, request in requests.items():
                got = await _grpc_call(channel, method, request, key)
                want = expected(rights, method)
                if got != want:
                    wrong.append((name, method, got, want))
            bad = await _grpc_call(
                channel,
                WF + "DescribeNamespace",
                _requests()[WF + "DescribeNamespace"],
                "aion_0123_nope",
            )
            if bad != "unauthenticated":
                wrong.append((name, "bad key", bad, "unauthenticated"))
    assert not wrong


HTTP_ROUTES = {
    WF + "GetSystemInfo": ("GET", "/api/v1/system-info", None),
    WF + "ListNamespaces": ("GET", "/api/v1/namespaces", None),
    WF + "DescribeNamespace": ("GET", f"/api/v1/namespaces/{NAMESPACE}", None),
    WF + "StartWorkflowExecution": (
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/workflows/{{id}}",
        {"workflowType": {"name": "Nothing"}, "taskQueue": {"name": "matrix"}},
    ),
    WF + "RecordActivityTaskHeartbeat": (
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/activity-heartbeat",
        {"taskToken": "bm90IGEgdG9rZW4="},
    ),
    WF + "UpdateNamespace": ("POST", f"/api/v1/namespaces/{NAMESPACE}/update", {}),
    OP + "ListSearchAttributes": ("GET", f"/api/v1/namespaces/{NAMESPACE}/search-attributes", None),
}


async def test_matrix_over_http(auth_server: AuthServer) -> None:
    wrong = []
    base = auth_server.server.http_url
    credentials = {**_credentials(auth_server), "bad-key": ("aion_0123_nope", "")}
    async with aiohttp.ClientSession() as session:
        for name, (key, rights) in credentials.items():
            for method, (verb, path, body) in HTTP_ROUTES.items():
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                url = base + path.replace("{id}", unique("http"))
                async with session.request(verb, url, json=body, headers=headers) as response:
                    payload = await response.json(content_type=None)
                    if response.status == 401:
                        got = "unauthenticated"
                    elif response.status == 403:
                        got = "denied"
                    else:
                        got = "allow"
                    if got != "allow":
                        assert payload["message"] == UNAUTHORIZED
                want = "unauthenticated" if name == "bad-key" else expected(rights, method)
                if got != want:
                    wrong.append((name, method, got, want))
    assert not wrong


# ---- the SDK and the CLI with keys -------------------------------------------------------------


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn
class Shouting:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            shout, text, start_to_close_timeout=timedelta(seconds=30)
        )


async def test_sdk_runs_a_workflow_with_a_worker_key_and_a_writer_key(
    auth_server: AuthServer,
) -> None:
    worker_key = await asyncio.to_thread(auth_server.create_key, NAMESPACE, "worker")
    writer_key = await asyncio.to_thread(auth_server.create_key, NAMESPACE, "writer")
    worker_client = await Client.connect(auth_server.address, api_key=worker_key, tls=False)
    client = await Client.connect(auth_server.address, api_key=writer_key, tls=False)
    queue = unique("auth-q")
    async with Worker(
        worker_client,
        task_queue=queue,
        workflows=[Shouting],
        activities=[shout],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        result = await client.execute_workflow(
            Shouting.run, "hello", id=unique("auth-wf"), task_queue=queue
        )
    assert result == "HELLO"
    listed = await asyncio.to_thread(auth_server.cli, "audit", "list", "-n", NAMESPACE)
    worker_events = [
        event
        for event in map(json.loads, listed.stdout.splitlines())
        if event["credential_id"] == worker_key.split("_")[1]
    ]
    assert worker_events == []  # the worker's calls were all allowed (and none is a write)
    with pytest.raises(RPCError) as refused:  # a worker key does not start workflows
        await worker_client.start_workflow(Shouting.run, "x", id=unique("no"), task_queue=queue)
    assert refused.value.status == RPCStatusCode.PERMISSION_DENIED
    with pytest.raises(RuntimeError, match="Unauthenticated"):  # the SDK's connect error
        await Client.connect(auth_server.address, api_key="aion_00_wrong", tls=False)


async def test_temporal_cli_with_an_api_key(auth_server: AuthServer) -> None:
    key = await asyncio.to_thread(auth_server.create_key, NAMESPACE, "writer")
    temporal = str(Path(sys.executable).parent / "temporal")
    workflow_id = unique("cli-auth")
    common = ["--address", auth_server.address, "--tls=false", "--namespace", NAMESPACE]
    start = ["workflow", "start", "--type", "Nothing", "--task-queue", "cli", "-w", workflow_id]
    ok = await asyncio.to_thread(
        subprocess.run,
        [temporal, *start, *common, "--api-key", key],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    refused = await asyncio.to_thread(
        subprocess.run, [temporal, *start, *common], capture_output=True, text=True
    )
    assert refused.returncode != 0 and UNAUTHORIZED in refused.stderr


async def test_revoked_and_expired_keys_are_refused_at_once(auth_server: AuthServer) -> None:
    key = await asyncio.to_thread(auth_server.create_key, NAMESPACE, "reader", "--description", "r")
    key_id = key.split("_")[1]
    request = rr.DescribeNamespaceRequest(namespace=NAMESPACE)
    async with grpc.aio.insecure_channel(auth_server.address) as channel:
        assert await _grpc_call(channel, WF + "DescribeNamespace", request, key) == "allow"
        listed = await asyncio.to_thread(auth_server.cli, "apikey", "list")
        assert key_id in listed.stdout and key not in listed.stdout
        disabled = await asyncio.to_thread(auth_server.cli, "apikey", "disable", key_id)
        assert disabled.returncode == 0, disabled.stderr
        assert (
            await _grpc_call(channel, WF + "DescribeNamespace", request, key) == "unauthenticated"
        )
        deleted = await asyncio.to_thread(auth_server.cli, "apikey", "delete", key_id)
        assert deleted.returncode == 0, deleted.stderr
        assert key_id not in (await asyncio.to_thread(auth_server.cli, "apikey", "list")).stdout
        expired = await asyncio.to_thread(
            auth_server.create_key, NAMESPACE, "reader", "--expires", "1ns"
        )
        assert (
            await _grpc_call(channel, WF + "DescribeNamespace", request, expired)
            == "unauthenticated"
        )


async def test_only_a_system_admin_manages_keys(auth_server: AuthServer) -> None:
    refused = await asyncio.to_thread(
        auth_server.cli,
        "apikey",
        "create",
        "-n",
        NAMESPACE,
        "--role",
        "admin",
        key=auth_server.keys["admin"],
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"aion: PERMISSION_DENIED: {UNAUTHORIZED}"


# ---- JWT ----------------------------------------------------------------------------------------


async def test_jwt(auth_server: AuthServer) -> None:
    issuer = auth_server.issuer
    request = rr.DescribeNamespaceRequest(namespace=NAMESPACE)
    cases = {
        "valid": (auth_server.token([f"{NAMESPACE}:read"]), "allow"),
        "no permission here": (auth_server.token(["other:read"]), "denied"),
        "expired": (auth_server.token([f"{NAMESPACE}:read"], exp=1_600_000_000), "unauthenticated"),
        "wrong issuer": (
            auth_server.token([f"{NAMESPACE}:read"], iss="https://evil"),
            "unauthenticated",
        ),
        "wrong audience": (
            auth_server.token([f"{NAMESPACE}:read"], aud="other"),
            "unauthenticated",
        ),
        "bad signature": (
            auth_server.token([f"{NAMESPACE}:read"], key=issuer.other_key()),
            "unauthenticated",
        ),
        "unknown key id": (
            auth_server.token([f"{NAMESPACE}:read"], kid="key-9"),
            "unauthenticated",
        ),
        "not a JWT": ("abc.def.ghi", "unauthenticated"),
    }
    async with grpc.aio.insecure_channel(auth_server.address) as channel:
        got = {
            name: await _grpc_call(channel, WF + "DescribeNamespace", request, token)
            for name, (token, _) in cases.items()
        }
    assert got == {name: want for name, (_, want) in cases.items()}


# ---- biscuits ----------------------------------------------------------------------------------


def _biscuit(root: biscuit_auth.KeyPair, authority: str, *checks: str) -> str:
    """A token granting `authority`, attenuated offline by one block per check."""
    token = biscuit_auth.BiscuitBuilder(authority).build(root.private_key)
    for check in checks:
        token = token.append(biscuit_auth.BlockBuilder(check))
    return str(token.to_base64())


async def test_biscuits(auth_server: AuthServer) -> None:
    root = auth_server.biscuit_root
    worker = _biscuit(root, f'role("{NAMESPACE}", "worker");')
    # Offline, its holder narrows it to task queue X (polls elsewhere refused; other calls kept).
    queue_x, queue_y = unique("bq-x"), unique("bq-y")
    narrowed = _biscuit(
        root,
        f'role("{NAMESPACE}", "worker");',
        f'check if task_queue("{queue_x}") or operation($op), !$op.starts_with("Poll");',
    )
    client = _biscuit(root, f'role("{NAMESPACE}", "writer");', 'check if workflow_type("T");')
    # An attenuation block cannot add rights: only the authority block's facts count.
    widened = _biscuit(root, f'role("{NAMESPACE}", "reader");', f'role("{NAMESPACE}", "admin");')
    forged = _biscuit(biscuit_auth.KeyPair(), f'role("{NAMESPACE}", "admin");')
    auth_server.secrets += [worker, narrowed, client, widened, forged]

    def start(workflow_type: str, queue: str) -> rr.StartWorkflowExecutionRequest:
        return rr.StartWorkflowExecutionRequest(
            namespace=NAMESPACE,
            workflow_id=unique("biscuit"),
            workflow_type=WorkflowType(name=workflow_type),
            task_queue=TaskQueue(name=queue),
            request_id=str(uuid.uuid4()),
        )

    def poll(queue: str) -> rr.PollWorkflowTaskQueueRequest:
        return rr.PollWorkflowTaskQueueRequest(
            namespace=NAMESPACE, task_queue=TaskQueue(name=queue)
        )

    writer = auth_server.keys["writer"]
    async with grpc.aio.insecure_channel(auth_server.address) as channel:
        calls = {
            "writer starts on X": (WF + "StartWorkflowExecution", start("Job", queue_x), writer),
            "narrowed polls X": (WF + "PollWorkflowTaskQueue", poll(queue_x), narrowed),
            "narrowed polls Y": (WF + "PollWorkflowTaskQueue", poll(queue_y), narrowed),
            "narrowed reads": (
                WF + "DescribeNamespace",
                rr.DescribeNamespaceRequest(namespace=NAMESPACE),
                narrowed,
            ),
            "worker starts": (WF + "StartWorkflowExecution", start("T", queue_y), worker),
            "client starts T": (WF + "StartWorkflowExecution", start("T", queue_y), client),
            "client starts U": (WF + "StartWorkflowExecution", start("U", queue_y), client),
            "widened updates": (
                WF + "UpdateNamespace",
                rr.UpdateNamespaceRequest(namespace=NAMESPACE),
                widened,
            ),
            "widened reads": (
                WF + "DescribeNamespace",
                rr.DescribeNamespaceRequest(namespace=NAMESPACE),
                widened,
            ),
            "forged": (
                WF + "DescribeNamespace",
                rr.DescribeNamespaceRequest(namespace=NAMESPACE),
                forged,
            ),
        }
        got = {}
        for name, (method, request, token) in calls.items():  # in order: X has a task to poll
            got[name] = await _grpc_call(channel, method, request, token)
    assert got == {
        "writer starts on X": "allow",
        "narrowed polls X": "allow",
        "narrowed polls Y": "denied",
        "narrowed reads": "allow",
        "worker starts": "denied",
        "client starts T": "allow",
        "client starts U": "denied",
        "widened updates": "denied",
        "widened reads": "allow",
        "forged": "unauthenticated",
    }


# ---- the audit log ------------------------------------------------------------------------------


async def test_audit_log_holds_the_writes_survives_a_restart_and_no_secret(
    auth_server: AuthServer,
) -> None:
    writer = auth_server.keys["writer"]
    writer_id = writer.split("_")[1]
    client = await Client.connect(auth_server.address, api_key=writer, tls=False)
    workflow_id = unique("audited")
    await client.start_workflow("Nothing", id=workflow_id, task_queue="audit")
    reader = await Client.connect(
        auth_server.address, api_key=auth_server.keys["reader"], tls=False
    )
    with pytest.raises(RPCError):
        await reader.start_workflow("Nothing", id=unique("denied"), task_queue="audit")

    await asyncio.to_thread(auth_server.server.stop)
    logged = "".join(auth_server.server.output)
    assert f'"credential_id": "{writer_id}"' in logged  # the structured log line
    await asyncio.to_thread(auth_server.server.start)

    listed = await asyncio.to_thread(auth_server.cli, "audit", "list", "--namespace", NAMESPACE)
    assert listed.returncode == 0, listed.stderr
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    starts = [e for e in events if e["workflow_id"] == workflow_id]
    assert [(e["subject"], e["credential_id"], e["result"]) for e in starts] == [
        (f"apikey:{writer_id}", writer_id, "OK")
    ]
    assert starts[0]["method"] == WF + "StartWorkflowExecution"
    denied = [e for e in events if e["result"] == "PERMISSION_DENIED"]
    assert any(e["credential_id"] == auth_server.keys["reader"].split("_")[1] for e in denied)
    everything = listed.stdout + logged + "".join(auth_server.server.output)
    for secret in auth_server.secrets:
        assert secret not in everything
        if secret.startswith("aion_"):  # aion_<id>_<secret>: the id may show, never the secret
            assert secret.removeprefix("aion_").partition("_")[2] not in everything


async def test_audit_events_past_their_retention_are_deleted(storage: Storage) -> None:
    """Events written long ago (straight into the database) are gone once a server with a
    retention runs; recent ones stay."""
    store: Store = (
        PostgresStore(storage.dsn) if storage.dsn else SQLiteStore(str(storage.db_filename))
    )
    await store.open()
    day_ns = 86_400 * 10**9
    await store.append_audit(
        [
            AuditRecord(
                now_ns() - age_ns,
                subject,
                "apikey",
                "0",
                WF + "StartWorkflowExecution",
                NAMESPACE,
                unique("aged"),
                "OK",
            )
            for subject, age_ns in (("long-ago", 100 * day_ns), ("lately", day_ns))
        ]
    )
    await store.close()
    database = (
        ["--dsn", storage.dsn] if storage.dsn else ["--db-filename", str(storage.db_filename)]
    )
    admin = created_key(
        await asyncio.to_thread(
            aion_cli, "apikey", "create", "-n", "temporal-system", "--role", "admin", *database
        )
    )
    server = storage.server(extra_args=["--auth", "--audit-retention", "30d"])
    await asyncio.to_thread(server.start)
    try:
        deadline = time.monotonic() + 30
        while True:
            listed = await asyncio.to_thread(
                aion_cli, "audit", "list", "--address", server.address, "--api-key", admin
            )
            assert listed.returncode == 0, listed.stderr
            subjects = {json.loads(line)["subject"] for line in listed.stdout.splitlines()}
            if "long-ago" not in subjects or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert "long-ago" not in subjects and "lately" in subjects
    finally:
        await asyncio.to_thread(server.stop)
