"""The security settings: `[auth]` and `[tls]` in the config file, and `aion server start`
refusing to listen beyond the loopback with auth off."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from aion.config import ConfigError, load
from tests.helpers import Storage, unique
from tests.servers import ROOT, free_port


def test_auth_and_tls_tables(tmp_path: Path) -> None:
    path = tmp_path / "aion.toml"
    path.write_text(
        """
db_filename = "aion.db"
[auth]
audit = false
audit_retention = "90d"
[auth.jwt]
jwks = "https://issuer.example/.well-known/jwks.json"
issuer = "https://issuer.example"
audience = "aion"
[auth.tls_permissions]
"worker.example" = ["orders:worker"]
[tls]
cert_file = "server.pem"
key_file = "server.key"
client_ca_file = "ca.pem"
peer_ca_file = "servers-ca.pem"
"""
    )
    config = load(str(path), {}).server
    assert config.auth is not None and config.tls is not None
    assert config.auth.api_keys and not config.auth.audit
    assert config.auth.jwt is not None and config.auth.jwt.audience == "aion"
    assert config.auth.tls_permissions == {"worker.example": ["orders:worker"]}
    assert config.auth.audit_retention == "90d"
    assert config.tls.client_ca_file == "ca.pem" and config.tls.peer_ca_file == "servers-ca.pem"
    assert load(None, {"db_filename": "aion.db"}).server.auth is None


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[auth]\nsecret = 1", "unknown key auth.secret"),
        ("[auth.jwt]\nissuer = 'x'", "auth.jwt needs jwks"),
        ("[tls]\ncert_file = 'a'", "tls needs cert_file and key_file"),
        ("[auth.tls_permissions]\nx = 'default:worker'", "auth.tls_permissions.x must be a list"),
        ("[auth]\naudit_retention = '90 days'", "time: unknown unit"),
    ],
)
def test_bad_tables(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "aion.toml"
    path.write_text('db_filename = "aion.db"\n' + toml)
    with pytest.raises(ConfigError, match=message):
        load(str(path), {})


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aion", "server", "start", "--port", str(free_port()), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_start_refuses_a_public_address_with_auth_off(tmp_path: Path) -> None:
    proc = _start("--ip", "0.0.0.0", "--db-filename", str(tmp_path / "aion.db"))
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "refusing to listen on 0.0.0.0 with auth off" in output
    assert not (tmp_path / "aion.db").exists()


@pytest.mark.parametrize("flag", ["--insecure", "--auth"])
def test_start_on_a_public_address_with_auth_or_insecure(storage: Storage, flag: str) -> None:
    where = ["--dsn", storage.dsn] if storage.dsn else ["--db-filename", str(storage.db_filename)]
    proc = _start("--ip", "0.0.0.0", flag, *where)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "listening on 0.0.0.0:" in line:
                break
        else:
            pytest.fail("the server did not start")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


async def test_plugins_from_the_config(storage: Storage, tmp_path: Path) -> None:
    where = f'dsn = "{storage.dsn}"' if storage.dsn else f'db_filename = "{storage.db_filename}"'
    config = tmp_path / "aion.toml"
    config.write_text(
        f"""{where}
[auth]
claim_mapper = "tests.auth_plugins:PasswordMapper"
authorizer = "tests.auth_plugins:NoTerminations"
"""
    )
    server = storage.server(command="start", extra_args=["--config", str(config)])
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(
            server.address, rpc_metadata={"authorization": "Bearer open-sesame"}
        )
        handle = await client.start_workflow("Nothing", id=unique("plugin"), task_queue="plugin")
        with pytest.raises(RPCError) as denied:
            await handle.terminate()
        assert denied.value.status == RPCStatusCode.PERMISSION_DENIED
        with pytest.raises(RuntimeError, match="Unauthenticated"):  # the SDK's connect error
            await Client.connect(server.address, rpc_metadata={"authorization": "Bearer x"})
    finally:
        await asyncio.to_thread(server.stop)
