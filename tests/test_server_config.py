"""`aion server start`: the TOML config file and flags (aion/config.py), and real processes
started from a config file."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import common_pb2 as enums
from temporalio.api.operatorservice.v1 import request_response_pb2 as operator_rr
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from aion.config import ConfigError, Settings, load
from tests.helpers import Storage
from tests.servers import ROOT, free_port

READY_TIMEOUT = 30.0


def _load(tmp_path: Path, toml: str | None, **flags: Any) -> Settings:
    path = None
    if toml is not None:
        path = str(tmp_path / "aion.toml")
        Path(path).write_text(toml)
    return load(path, flags)


# ---- parsing and validation ----------------------------------------------------------------


def test_example_file_is_valid() -> None:
    config = load(os.path.join(ROOT, "docs", "aion.example.toml"), {}).server
    assert config.dsn and config.dsn.startswith("postgresql://")
    assert config.db_filename is None
    assert (config.ip, config.port, config.broadcast_address) == ("0.0.0.0", 7233, "10.0.0.5:7233")
    assert config.namespaces == ["default", "orders"]
    assert config.search_attributes == {
        "CustomerId": enums.INDEXED_VALUE_TYPE_KEYWORD,
        "OrderTotal": enums.INDEXED_VALUE_TYPE_DOUBLE,
    }
    assert config.dynamic_config == {"limit.historyCount.suggestContinueAsNew": 10000}


def test_defaults_with_only_a_database(tmp_path: Path) -> None:
    settings = _load(tmp_path, None, db_filename="aion.db")
    config = settings.server
    assert settings.log_level == "info"
    assert (config.ip, config.port, config.num_shards) == ("127.0.0.1", 7233, 4)
    assert config.broadcast_address == "127.0.0.1:7233"
    assert config.namespaces == ["default"]
    assert (config.db_filename, config.dsn) == ("aion.db", None)
    assert config.search_attributes == {} and config.dynamic_config == {}


def test_flags_override_the_file(tmp_path: Path) -> None:
    toml = """
ip = "0.0.0.0"
port = 7300
dsn = "postgresql://aion@db:5432/aion"
num_shards = 8
namespaces = ["default", "orders"]
log_level = "WARN"
[search_attributes]
CustomerId = "keyword"
[dynamic_config]
limit.historyCount.suggestContinueAsNew = 50
"other.key" = "x"
"""
    from_file = _load(tmp_path, toml).server
    assert from_file.port == 7300 and from_file.num_shards == 8
    assert from_file.broadcast_address == "0.0.0.0:7300"
    assert from_file.dynamic_config == {
        "limit.historyCount.suggestContinueAsNew": 50,
        "other.key": "x",
    }
    settings = _load(
        tmp_path,
        toml,
        port=7400,
        db_filename="local.db",
        num_shards=2,
        namespaces=["billing"],
        broadcast_address="aion-1.internal:7400",
        log_level="debug",
        search_attributes={"Total": "Double"},
        dynamic_config={"other.key": "y"},
    )
    config = settings.server
    assert settings.log_level == "debug"
    assert (config.ip, config.port, config.num_shards) == ("0.0.0.0", 7400, 2)
    assert (config.db_filename, config.dsn) == ("local.db", None)
    assert config.namespaces == ["billing"]
    assert config.broadcast_address == "aion-1.internal:7400"
    assert config.search_attributes == {
        "CustomerId": enums.INDEXED_VALUE_TYPE_KEYWORD,
        "Total": enums.INDEXED_VALUE_TYPE_DOUBLE,
    }
    assert config.dynamic_config["other.key"] == "y"
    assert _load(tmp_path, toml, dsn="postgresql://other/db").server.dsn == "postgresql://other/db"


def test_cluster_identity_from_the_file_and_flags(tmp_path: Path) -> None:
    """The `[cluster]` table sets this cluster's identity; its flags replace single keys."""
    toml = """
db_filename = "aion.db"
[cluster]
name = "us-east"
enable_global_namespace = true
initial_failover_version = 2
master_cluster_name = "us-west"
redirection_policy = "selected-apis-forwarding"
"""
    cluster = _load(tmp_path, toml).server.cluster
    assert (cluster.name, cluster.enable_global_namespace) == ("us-east", True)
    assert (cluster.failover_version_increment, cluster.initial_failover_version) == (10, 2)
    assert (cluster.master_cluster_name, cluster.address) == ("us-west", "")
    assert cluster.redirection_policy == "selected-apis-forwarding"
    flagged = _load(tmp_path, toml, cluster={"name": "eu", "address": "eu:7233"}).server.cluster
    assert (flagged.name, flagged.address, flagged.initial_failover_version) == ("eu", "eu:7233", 2)
    assert _load(tmp_path, None, db_filename="aion.db").server.cluster.name == "active"


def test_ipv6_broadcast_default_and_duplicate_namespaces(tmp_path: Path) -> None:
    config = _load(tmp_path, 'ip = "::1"\nnamespaces = ["a", "b", "a"]', db_filename="x.db").server
    assert config.broadcast_address == "[::1]:7233"
    assert config.namespaces == ["a", "b"]


@pytest.mark.parametrize(
    ("toml", "flags", "message"),
    [
        ("", {}, "a production server needs a database"),
        ('port = 1\nhost = "x"', {}, 'unknown key "host"'),
        ('port = "7233"', {"db_filename": "x"}, "port must be an integer, not a string"),
        ("port = true", {"db_filename": "x"}, "port must be an integer, not a boolean"),
        ("port = 70000", {"db_filename": "x"}, "port must be between 1 and 65535, not 70000"),
        ("", {"db_filename": "x", "port": 0}, "port must be between 1 and 65535, not 0"),
        ("num_shards = 0", {"db_filename": "x"}, "num_shards must be at least 1, not 0"),
        ("", {"db_filename": "x", "num_shards": -2}, "num_shards must be at least 1"),
        ('namespaces = "default"', {"db_filename": "x"}, "namespaces must be an array"),
        ("namespaces = [1]", {"db_filename": "x"}, "namespaces must hold strings, not an integer"),
        ('namespaces = [""]', {"db_filename": "x"}, "a namespace name must not be empty"),
        ('dsn = "postgresql://a/b"\ndb_filename = "x"', {}, "set only one of dsn"),
        ('db_filename = "x"\nlog_level = "loud"', {}, "log_level must be one of"),
        ('db_filename = "x"\nbroadcast_address = "nohost"', {}, "broadcast_address must be"),
        ('db_filename = "x"\nbroadcast_address = "h:99999"', {}, "between 1 and 65535"),
        ('db_filename = "x"\nsearch_attributes = 1', {}, "search_attributes must be a table"),
        ('db_filename = "x"\n[search_attributes]\nA = 1', {}, "search_attributes.A must be"),
        ('db_filename = "x"\n[search_attributes]\nA = "Strange"', {}, "value type"),
        ('db_filename = "x"\n[search_attributes]\nWorkflowId = "Keyword"', {}, "reserved"),
        (
            'db_filename = "x"\n[dynamic_config]\nlimit.historyCount.suggestContinueAsNew = "a"',
            {},
            "suggestContinueAsNew must be an integer, not a string",
        ),
        (
            'db_filename = "x"\n[dynamic_config]\nlimit.blobSize.error = 1.5',
            {},
            "limit.blobSize.error must be an integer, not a float",
        ),
        (
            'db_filename = "x"\n[dynamic_config]\n'
            '"history.maxTotalUpdates.suggestContinueAsNewThreshold" = "half"',
            {},
            "suggestContinueAsNewThreshold must be a float, not a string",
        ),
        ("port = [", {}, "is not valid TOML"),
    ],
)
def test_invalid_settings(tmp_path: Path, toml: str, flags: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, toml, **flags)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_limits_from_the_file(tmp_path: Path) -> None:
    """Temporal's limit keys, nested or quoted; a float setting may be written as an integer."""
    toml = (
        'db_filename = "x"\n[dynamic_config]\nlimit.numPendingActivities.error = 5\n'
        '"history.maxTotalUpdates.suggestContinueAsNewThreshold" = 1\n'
    )
    assert _load(tmp_path, toml).server.dynamic_config == {
        "limit.numPendingActivities.error": 5,
        "history.maxTotalUpdates.suggestContinueAsNewThreshold": 1,
    }


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file .*No such file"):
        load(str(tmp_path / "missing.toml"), {"db_filename": "x"})


# ---- real processes ------------------------------------------------------------------------


def _aion(*args: str) -> list[str]:
    return [sys.executable, "-m", "aion", "server", *args]


@pytest.fixture
def started(tmp_path: Path, storage: Storage) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`aion server start --config FILE` on a fresh SQLite file or PostgreSQL database; yields
    the process and its address once it prints its readiness line, and stops it by its PID
    afterwards."""
    port = free_port()
    config = tmp_path / "aion.toml"
    database = f'dsn = "{storage.dsn}"' if storage.dsn else f'db_filename = "{storage.db_filename}"'
    config.write_text(
        f"""
port = {port}
{database}
num_shards = 3
namespaces = ["default", "orders", "billing"]
log_level = "warning"
[search_attributes]
CustomerId = "Keyword"
"""
    )
    proc = subprocess.Popen(
        _aion("start", "--config", str(config), "--ip", "127.0.0.1"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:  # keeps the pipe empty while the server runs
        assert proc.stdout
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    address = f"127.0.0.1:{port}"
    seen: list[str] = []
    try:
        while True:
            line = lines.get(timeout=READY_TIMEOUT)
            assert line is not None, "aion server start exited:\n" + "".join(seen)
            seen.append(line)
            if line.strip() == f"Aion server listening on {address}":
                break
        yield proc, address
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_start_from_config_file(started: tuple[subprocess.Popen[str], str]) -> None:
    proc, address = started
    client = await Client.connect(address)
    service = client.workflow_service
    for name in ("default", "orders", "billing"):
        described = await service.describe_namespace(rr.DescribeNamespaceRequest(namespace=name))
        assert described.namespace_info.name == name
    with pytest.raises(RPCError) as info:
        await service.describe_namespace(rr.DescribeNamespaceRequest(namespace="absent"))
    assert info.value.status == RPCStatusCode.NOT_FOUND
    cluster = await service.get_cluster_info(rr.GetClusterInfoRequest())
    assert cluster.history_shard_count == 3
    listed = await client.operator_service.list_search_attributes(
        operator_rr.ListSearchAttributesRequest(namespace="orders")
    )
    assert listed.custom_attributes["CustomerId"] == enums.INDEXED_VALUE_TYPE_KEYWORD
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(15) == 0


@pytest.mark.parametrize(
    ("toml", "args", "message"),
    [
        ("port = 7300\nprot = 1\n", [], 'unknown key "prot"'),
        ('db_filename = "x.db"\nport = "high"\n', [], "port must be an integer, not a string"),
        ("num_shards = 4\n", [], "a production server needs a database"),
        ('db_filename = "x.db"\n', ["--num-shards", "0"], "num_shards must be at least 1"),
        (None, ["--db-filename", "x.db"], "cannot read config file"),
        ('db_filename = "x.db"\n[cluster]\nname = 3\n', [], "cluster.name must be a string"),
        ('db_filename = "x.db"\n[cluster]\nnmae = "A"\n', [], "unknown key cluster.nmae"),
        (
            'db_filename = "x.db"\n[cluster]\ninitial_failover_version = 10\n',
            [],
            "cluster: initial_failover_version (10) must be above 0 and below "
            "failover_version_increment (10)",
        ),
    ],
)
def test_bad_config_exits_1_with_one_line(
    tmp_path: Path, toml: str | None, args: list[str], message: str
) -> None:
    config = tmp_path / "aion.toml"
    if toml is not None:
        config.write_text(toml)
    result = subprocess.run(
        _aion("start", "--config", str(config), "--port", str(free_port()), *args),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("aion: ") and message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""


def test_start_without_database_refuses(tmp_path: Path) -> None:
    result = subprocess.run(
        _aion("start", "--port", str(free_port())),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "needs a database" in result.stderr and "--dsn" in result.stderr
