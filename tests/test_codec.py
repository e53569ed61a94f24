"""End-to-end payload encryption: `aion.codec` in SDK workers and clients against a real Aion
server, `aion codec-server` processes speaking Temporal's remote codec protocol (to the `temporal`
CLI and to plain HTTP), and key rotation."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import biscuit_auth
import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import aiohttp

    from aion.codec import ENCODING, KEY_ID, EncryptionCodec, KeyRing
    from tests.auth_support import AUDIENCE, ISSUER, TokenIssuer, aion_cli, created_key
    from tests.conformance.reference import temporal_binary
    from tests.helpers import Storage, unique
    from tests.servers import AionProcess, CodecServerProcess

pytestmark = pytest.mark.timeout(120)

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(100, 132))).decode()
UI_ORIGIN = "http://localhost:8233"
TOKEN = "s3cret-token"
SECRET = "Ada Lovelace, account 4242"


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class Greeting:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=30)
        )


def write_keys(path: Path, current: str, keys: dict[str, str]) -> str:
    path.write_text(json.dumps({"current": current, "keys": keys}))
    return str(path)


def encrypting(client: Client, keys: KeyRing) -> Client:
    """A client on the same connection whose payloads go through `EncryptionCodec(keys)`."""
    converter = dataclasses.replace(DataConverter.default, payload_codec=EncryptionCodec(keys))
    return Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=converter,
    )


async def run_greeting(client: Client, name: str) -> tuple[str, str]:
    """Runs `Greeting(name)` on a worker of `client`; its workflow id and result."""
    task_queue = unique("codec")
    async with Worker(client, task_queue=task_queue, workflows=[Greeting], activities=[greet]):
        workflow_id = unique("greeting")
        result = await client.execute_workflow(
            Greeting.run, name, id=workflow_id, task_queue=task_queue
        )
    return workflow_id, result


async def started_input(client: Client, workflow_id: str) -> Payload:
    """The workflow's input as the server stores it (read without a codec)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    started = history.events[0]
    assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    return started.workflow_execution_started_event_attributes.input.payloads[0]


def assert_encrypted(payload: Payload, key_id: str) -> None:
    assert payload.metadata["encoding"] == ENCODING
    assert payload.metadata[KEY_ID] == key_id.encode()
    assert b"Lovelace" not in payload.SerializeToString()


@pytest.fixture
def codec_process() -> Iterator[list[CodecServerProcess]]:
    """Codec servers the test starts (append them): stopped at the end."""
    started: list[CodecServerProcess] = []
    yield started
    for process in started:
        process.stop()


async def start_codec(
    started: list[CodecServerProcess], key_file: str, **kwargs: Any
) -> CodecServerProcess:
    process = CodecServerProcess(key_file, **kwargs)
    started.append(process)
    await asyncio.to_thread(process.start)
    return process


# ---- SDK and CLI against Aion ---------------------------------------------------------------
async def test_worker_round_trips_encrypted_payloads_and_cli_decodes_them(
    client: Client,
    aion_server: AionProcess,
    tmp_path: Path,
    codec_process: list[CodecServerProcess],
) -> None:
    keys = write_keys(tmp_path / "keys.json", "a", {"a": KEY_A})
    workflow_id, result = await run_greeting(encrypting(client, KeyRing.from_file(keys)), SECRET)
    assert result == f"Hello, {SECRET}!"

    # The server only ever saw ciphertext: the input, the activity's input and its result.
    assert_encrypted(await started_input(client, workflow_id), "a")
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    completed = next(
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    )
    assert_encrypted(completed.activity_task_completed_event_attributes.result.payloads[0], "a")

    # `temporal workflow show` decodes through `aion codec-server` (with its token).
    codec = await start_codec(codec_process, keys, token=TOKEN)
    codec_flags = ["--codec-endpoint", codec.url, "--codec-auth", f"Bearer {TOKEN}"]
    assert SECRET not in await show(aion_server, workflow_id, "--detailed")
    detailed = await show(aion_server, workflow_id, "--detailed", *codec_flags)
    assert f"input[0]: {SECRET}" in detailed
    assert f"result[0]: Hello, {SECRET}!" in detailed
    # JSON output, with the namespace templated into the endpoint's path.
    codec_flags[1] = codec.url + "/{namespace}"
    events = json.loads(await show(aion_server, workflow_id, "-o", "json", *codec_flags))["events"]
    payload = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(payload["data"])) == SECRET


async def show(server: AionProcess, workflow_id: str, *args: str) -> str:
    """`temporal workflow show` against `server`: its output."""
    binary = temporal_binary()
    assert binary is not None
    command = [binary, "workflow", "show", "-w", workflow_id, "--address", server.address, *args]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_payloads_under_a_retired_key_still_decode(
    client: Client, tmp_path: Path, codec_process: list[CodecServerProcess]
) -> None:
    old_file = write_keys(tmp_path / "a.json", "a", {"a": KEY_A})
    old_id, _ = await run_greeting(encrypting(client, KeyRing.from_file(old_file)), SECRET)
    codec = await start_codec(codec_process, old_file)
    async with aiohttp.ClientSession() as http:
        under_a = await post(http, f"{codec.url}/encode", {"payloads": [PLAIN]})
    assert base64.b64decode(under_a["payloads"][0]["metadata"][KEY_ID]) == b"a"
    await asyncio.to_thread(codec.stop)

    # Rotation: B encrypts from now on, A stays to decrypt.
    rotated_file = write_keys(tmp_path / "ab.json", "b", {"a": KEY_A, "b": KEY_B})
    rotated = encrypting(client, KeyRing.from_file(rotated_file))
    assert await rotated.get_workflow_handle(old_id).result() == f"Hello, {SECRET}!"
    new_id, result = await run_greeting(rotated, SECRET)
    assert result == f"Hello, {SECRET}!"
    assert_encrypted(await started_input(client, old_id), "a")
    assert_encrypted(await started_input(client, new_id), "b")

    # The codec server, restarted on the rotated ring, decodes A's payloads and encodes with B.
    codec = await start_codec(codec_process, rotated_file)
    old_input = to_json(await started_input(client, old_id))
    async with aiohttp.ClientSession() as http:
        decoded = await post(
            http, f"{codec.url}/decode", {"payloads": [old_input, *under_a["payloads"]]}
        )
        assert json.loads(base64.b64decode(decoded["payloads"][0]["data"])) == SECRET
        assert decoded["payloads"][1] == PLAIN
        encoded = await post(http, f"{codec.url}/encode", {"payloads": [PLAIN]})
        assert base64.b64decode(encoded["payloads"][0]["metadata"][KEY_ID]) == b"b"

    # A ring without A cannot read A's payloads.
    without_a = EncryptionCodec(KeyRing({"b": base64.b64decode(KEY_B)}, "b"))
    with pytest.raises(ValueError, match="unknown encryption key 'a'"):
        await without_a.decode([await started_input(client, old_id)])


# ---- the codec server's HTTP surface ---------------------------------------------------------
def to_json(payload: Payload) -> dict[str, Any]:
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


async def post(http: aiohttp.ClientSession, url: str, body: Any, **headers: str) -> Any:
    async with http.post(url, json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


@pytest.fixture(scope="module")
def strict_codec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CodecServerProcess]:
    """A codec server with a token and one allowed browser origin."""
    keys = write_keys(tmp_path_factory.mktemp("codec") / "keys.json", "a", {"a": KEY_A})
    process = CodecServerProcess(keys, cors_origins=[UI_ORIGIN], token=TOKEN)
    process.start()
    yield process
    process.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}
PLAIN = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": "IngiCg=="}


async def test_codec_server_round_trip_keeps_unencrypted_payloads(
    strict_codec: CodecServerProcess,
) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {**AUTH, "X-Namespace": "default"}
        encoded = await post(http, f"{strict_codec.url}/encode", {"payloads": [PLAIN]}, **headers)
        assert base64.b64decode(encoded["payloads"][0]["metadata"]["encoding"]) == ENCODING
        decoded = await post(http, f"{strict_codec.url}/decode", encoded, **headers)
        assert decoded == {"payloads": [PLAIN]}
        # Not encrypted: passes through; the namespace may also be a path segment.
        mixed = {"payloads": [PLAIN, *encoded["payloads"]]}
        decoded = await post(http, f"{strict_codec.url}/other/decode", mixed, **AUTH)
        assert decoded == {"payloads": [PLAIN, PLAIN]}
        assert await post(http, f"{strict_codec.url}/decode", {"payloads": []}, **AUTH) == {
            "payloads": []
        }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "must be an object"),
        (b'{"payloads": {}}', "must be an object"),
        (b'{"payloads": [3]}', "payloads[0] must be an object"),
        (b'{"payloads": [[]]}', "payloads[0] must be an object"),
        (b'{"payloads": [null]}', "payloads[0] must be an object"),
        (b'{"payloads": [{"data": 3}]}', "malformed payloads"),
        (b'{"payloads": [{"metadata": []}]}', "malformed payloads"),
        (b'{"payloads": [{"dta": "eA=="}]}', "malformed payloads"),
        (b'{"payloads": [], "extra": 1}', "malformed payloads"),
        (b'{"payloads": [{"data": "@@@@"}]}', "payloads[0].data is not base64"),
        (b'{"payloads": [{"metadata": {"encoding": "%"}}]}', "metadata.encoding is not base64"),
        (b"\xff\xfe", "not JSON"),
    ],
)
async def test_codec_server_rejects_bad_input_with_400(
    strict_codec: CodecServerProcess, body: bytes, message: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{strict_codec.url}/decode", data=body, headers=AUTH) as response,
    ):
        assert response.status == 400
        assert message in (await response.json())["message"]


async def test_codec_server_rejects_undecryptable_payloads_with_400(
    strict_codec: CodecServerProcess,
) -> None:
    async with aiohttp.ClientSession() as http:
        encoded = await post(http, f"{strict_codec.url}/encode", {"payloads": [PLAIN]}, **AUTH)
        payload = encoded["payloads"][0]
        data = bytearray(base64.b64decode(payload["data"]))
        data[-1] ^= 1
        cases = [
            ({**payload, "data": base64.b64encode(bytes(data)).decode()}, "altered data"),
            ({**payload, "data": "AAAA"}, "too short"),
            (
                {**payload, "metadata": {**payload["metadata"], KEY_ID: "eno="}},
                "unknown encryption key 'zz'",
            ),
            ({"metadata": {"encoding": payload["metadata"]["encoding"]}}, "no encryption-key-id"),
        ]
        for bad, message in cases:
            async with http.post(
                f"{strict_codec.url}/decode", json={"payloads": [bad]}, headers=AUTH
            ) as response:
                assert response.status == 400
                assert message in (await response.json())["message"]


async def test_codec_server_limits_and_routes(strict_codec: CodecServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        big = {"payloads": [{"data": "A" * (5 * 1024 * 1024)}]}
        async with http.post(f"{strict_codec.url}/encode", json=big, headers=AUTH) as response:
            assert response.status == 413
        async with http.get(f"{strict_codec.url}/decode", headers=AUTH) as response:
            assert response.status == 405
        async with http.post(f"{strict_codec.url}/a/b/decode", headers=AUTH) as response:
            assert response.status == 404


async def test_codec_server_cors_and_token(strict_codec: CodecServerProcess) -> None:
    url = f"{strict_codec.url}/decode"
    async with aiohttp.ClientSession() as http:
        preflight = {
            "Origin": UI_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
        }
        # The browser's preflight carries no credentials: answered without the token.
        async with http.options(url, headers=preflight) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == UI_ORIGIN
            assert response.headers["Access-Control-Allow-Credentials"] == "true"
            allowed = {
                h.strip().lower()
                for h in response.headers["Access-Control-Allow-Headers"].split(",")
            }
            assert {"x-namespace", "content-type", "authorization"} <= allowed
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
        async with http.options(
            url, headers={**preflight, "Origin": "http://evil.test"}
        ) as response:
            assert response.status == 403
            assert "Access-Control-Allow-Origin" not in response.headers

        body = {"payloads": [PLAIN]}
        unauthorized: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
        ]
        for headers in unauthorized:
            async with http.post(
                url, json=body, headers={"Origin": UI_ORIGIN, **headers}
            ) as response:
                assert response.status == 401
                # The browser may read the 401, to tell the user.
                assert response.headers["Access-Control-Allow-Origin"] == UI_ORIGIN
        # The scheme is case-insensitive (RFC 9110).
        lower = {"Origin": UI_ORIGIN, "Authorization": f"bearer {TOKEN}"}
        async with http.post(url, json=body, headers=lower) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == UI_ORIGIN


# ---- key rings and imports -------------------------------------------------------------------
def test_key_ring_from_env(tmp_path: Path) -> None:
    document = {"current": "b", "keys": {"a": KEY_A, "b": KEY_B}}
    ring = KeyRing.from_env({"AION_CODEC_KEYS": json.dumps(document)})
    assert ring.current == "b" and set(ring.keys) == {"a", "b"}
    path = write_keys(tmp_path / "k.json", "a", {"a": KEY_A})
    assert KeyRing.from_env({"AION_CODEC_KEY_FILE": path}).current == "a"
    for bad, message in [
        ({}, "no key ring"),
        ({"AION_CODEC_KEYS": "nope"}, "not JSON"),
        ({"AION_CODEC_KEYS": '{"current": "a", "keys": {"a": "!!"}}'}, "not valid base64"),
        ({"AION_CODEC_KEYS": '{"current": "a", "keys": {"a": "AAAA"}}'}, "AES-256 needs 32"),
        ({"AION_CODEC_KEYS": json.dumps({"current": "c", "keys": {"a": KEY_A}})}, "current key"),
        ({"AION_CODEC_KEY_FILE": str(tmp_path / "missing.json")}, "cannot read"),
    ]:
        with pytest.raises(ValueError, match=message):
            KeyRing.from_env(bad)


def test_codec_server_fails_clearly_without_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AION_CODEC_")}
    done = subprocess.run(
        [sys.executable, "-m", "aion", "codec-server", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert "no key ring" in done.stderr


def test_aion_codec_imports_no_server_and_no_http() -> None:
    code = (
        "import sys, aion.codec; "
        "print(sorted(m for m in sys.modules if m.startswith(('aion.', 'aiohttp'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['aion.codec']"


async def test_codec_server_checks_the_servers_credentials(
    storage: Storage, tmp_path: Path, codec_process: list[CodecServerProcess]
) -> None:
    """With auth on, the codec server takes what the server would: API keys (from its
    database), JWTs, biscuits; decoding needs read access to the namespace, encoding write."""
    database = (
        ["--dsn", storage.dsn] if storage.dsn else ["--db-filename", str(storage.db_filename)]
    )
    reader, writer = [
        created_key(await asyncio.to_thread(aion_cli, "apikey", "create", *key, *database))
        for key in (["-n", "default", "--role", "reader"], ["-n", "default", "--role", "writer"])
    ]
    issuer = TokenIssuer.create(tmp_path / "jwks.json")
    root = biscuit_auth.KeyPair()
    keys = write_keys(tmp_path / "keys.json", "a", {"a": KEY_A})
    codec = await start_codec(
        codec_process,
        keys,
        cors_origins=[UI_ORIGIN],
        extra_args=[
            "--auth",
            *database,
            "--jwt-jwks",
            str(tmp_path / "jwks.json"),
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
            "--biscuit-root-key",
            root.public_key.to_bytes().hex(),
        ],
    )
    biscuit = (
        biscuit_auth.BiscuitBuilder('role("default", "reader");').build(root.private_key)
    ).to_base64()
    async with aiohttp.ClientSession() as http:

        async def status(path: str, credential: str | None, namespace: str = "default") -> int:
            headers = {"X-Namespace": namespace, "Origin": UI_ORIGIN}
            if credential is not None:
                headers["Authorization"] = f"Bearer {credential}"
            body = {"payloads": [PLAIN]}
            async with http.post(codec.url + path, json=body, headers=headers) as response:
                return response.status

        assert await status("/decode", None) == 401
        assert await status("/decode", "aion_0123456789abcdef_" + "0" * 43) == 401
        assert await status("/decode", TOKEN) == 401
        assert await status("/decode", reader) == 200
        assert await status("/encode", reader) == 403  # encoding is a write
        assert await status("/decode", reader, namespace="other") == 403
        assert await status("/other/decode", reader) == 403  # the path's namespace
        assert await status("/encode", writer) == 200
        assert await status("/decode", issuer.token(["default:read"])) == 200
        expired = issuer.token(["default:read"], exp=int(time.time()) - 60)
        assert await status("/decode", expired) == 401
        assert await status("/decode", biscuit) == 200
        assert await status("/encode", biscuit) == 403
        preflight = {"Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST"}
        async with http.options(codec.url + "/decode", headers=preflight) as response:
            assert response.status == 204  # the browser's preflight carries no credentials
