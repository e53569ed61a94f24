"""Cluster metadata: Temporal's failover version arithmetic and its checks on a remote
cluster's identity before connecting to it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from aion import errors
from aion.cluster_metadata import ClusterConfig, ClusterMetadata
from aion.persistence import RemoteClusterRecord
from aion.persistence.sqlite import SQLiteStore

B = RemoteClusterRecord("B", "id-b", "b:7233", "", 2, 10, 4, True, True, True)


@pytest.fixture
async def metadata() -> AsyncIterator[ClusterMetadata]:
    """Cluster A (initial version 1, increment 10, 4 shards) connected to B (version 2)."""
    store = SQLiteStore(":memory:")
    await store.open()
    clusters = ClusterMetadata(store, ClusterConfig("A", True), 4, "a:7233")
    await clusters.load()
    await clusters.save_remote(B)
    yield clusters
    await store.close()


async def test_failover_versions_follow_temporal(metadata: ClusterMetadata) -> None:
    """Register on A: 1; to B: 2; back to A: 11; to B again: 12; a version already A's stays."""
    assert metadata.next_failover_version("A", 0) == 1
    assert metadata.next_failover_version("B", 1) == 2
    assert metadata.next_failover_version("A", 2) == 11
    assert metadata.next_failover_version("B", 11) == 12
    assert metadata.next_failover_version("A", 11) == 11


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"name": "A"}, "Cannot update current cluster metadata from rpc calls"),
        (
            {"failover_version_increment": 100},
            "Cannot add remote cluster due to failover version increment mismatch",
        ),
        ({"history_shard_count": 0}, "Remote cluster HistoryShardCount must be positive"),
        (
            {"history_shard_count": 6},
            "Remote cluster shard number and local cluster shard number are not multiples.",
        ),
        (
            {"global_namespace_enabled": False},
            "Cannot add remote cluster as global namespace is not supported",
        ),
        (
            {"name": "C", "initial_failover_version": 2},
            "Cannot add remote cluster due to initial failover version conflict",
        ),
        (
            {"name": "C", "initial_failover_version": 1},
            "Cannot add remote cluster due to initial failover version conflict",
        ),
    ],
)
async def test_a_remote_cluster_is_checked_as_temporal_does(
    metadata: ClusterMetadata, change: dict[str, object], problem: str
) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        metadata.check_remote(dataclasses.replace(B, **change))  # type: ignore[arg-type]
    message = refused.value.message.removeprefix(
        "Unable connect to remote cluster with invalid config: "
    )
    assert message.rstrip(".") == problem.rstrip(".")


async def test_an_update_of_a_connected_cluster_and_shard_multiples_pass(
    metadata: ClusterMetadata,
) -> None:
    metadata.check_remote(dataclasses.replace(B, address="elsewhere:7233"))
    metadata.check_remote(dataclasses.replace(B, history_shard_count=16))
    metadata.check_remote(dataclasses.replace(B, name="C", initial_failover_version=3))


def test_settings_are_checked() -> None:
    assert ClusterConfig().problem() is None
    assert ClusterConfig(name="").problem() == "the cluster name must not be empty"
    assert "below failover_version_increment" in str(
        ClusterConfig(initial_failover_version=10).problem()
    )
    assert "redirection_policy" in str(ClusterConfig(redirection_policy="all").problem())
