"""When a hidden branch whose re-apply failed is tried again, and when it is set aside
(`aion.replication.history.ReapplyBackoff`)."""

from __future__ import annotations

import grpc

from aion import errors
from aion.persistence import StoreUnavailableError
from aion.replication.history import (
    REAPPLY_MAX_FAILURES,
    ReapplyBackoff,
    is_outage,
    reapply_delay,
)

INF = float("inf")
BRANCH = ("ns", "wf", "run", "8@v1")
OTHER = ("ns", "other", "run", "5@v1")


def test_the_delay_doubles_from_one_second_to_five_minutes() -> None:
    assert [reapply_delay(n) for n in range(1, 12)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_a_failing_branch_waits_longer_after_each_failure() -> None:
    backoff = ReapplyBackoff()
    assert backoff.due(BRANCH) == 0
    assert backoff.failed(BRANCH, outage=False, now=100.0) == 101.0
    assert backoff.failed(BRANCH, outage=True, now=101.0) == 103.0
    assert backoff.due(BRANCH) == 103.0 and backoff.due(OTHER) == 0
    backoff.succeeded(BRANCH)
    assert backoff.due(BRANCH) == 0
    assert backoff.failed(BRANCH, outage=False, now=200.0) == 201.0  # counted afresh


def test_a_branch_is_set_aside_after_failures_that_are_not_outages() -> None:
    backoff = ReapplyBackoff()
    for _ in range(30):  # an outage, however long, never sets a branch aside
        assert backoff.failed(OTHER, outage=True, now=0.0) < INF
    for n in range(1, REAPPLY_MAX_FAILURES):
        assert backoff.failed(BRANCH, outage=False, now=0.0) == reapply_delay(n)
    assert backoff.failed(BRANCH, outage=False, now=0.0) == INF
    assert backoff.due(BRANCH) == INF

    shard_of = {"wf": 1, "other": 2}
    backoff.release(lambda _namespace, workflow: shard_of[workflow], 1)
    assert backoff.due(BRANCH) == 0 and backoff.due(OTHER) > 0


def _rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """A remote cluster's answer, as its client raises it."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "")


def test_outages_are_told_from_errors_of_the_branch() -> None:
    for outage in (
        errors.Unavailable("the active cluster A is not connected"),
        errors.ShardNotOwned(3),
        StoreUnavailableError("down"),
        errors.namespace_not_active("ns", "B", "A"),
        ConnectionRefusedError(),
        _rpc_error(grpc.StatusCode.UNAVAILABLE),
        _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED),
    ):
        assert is_outage(outage), outage
    for permanent in (
        errors.InvalidArgument("bad"),
        errors.FailedPrecondition("refused"),
        _rpc_error(grpc.StatusCode.INVALID_ARGUMENT),
        ValueError(),
    ):
        assert not is_outage(permanent), permanent
