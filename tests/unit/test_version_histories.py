"""Where two version histories of one run branch, and which branch wins (conflict resolution,
`aion.history.replication`)."""

from __future__ import annotations

import pytest

from aion.history.replication import (
    Divergence,
    UnresolvableConflict,
    common_ancestor,
    divergence,
)
from aion.history.state.execution import VersionHistoryItem


def items(*pairs: tuple[int, int]) -> list[VersionHistoryItem]:
    return [VersionHistoryItem(event_id, version) for event_id, version in pairs]


def test_the_common_ancestor_is_the_last_event_both_wrote_at_the_same_version() -> None:
    assert common_ancestor(items((8, 1)), items((4, 1), (7, 2))) == 4
    assert common_ancestor(items((4, 1), (6, 2)), items((4, 1), (9, 2))) == 6
    assert common_ancestor(items((4, 1)), items((4, 2))) == 0
    assert common_ancestor([], items((3, 1))) == 0


def test_a_prefix_is_no_divergence() -> None:
    assert divergence(items((4, 1)), items((4, 1), (7, 2))) is None  # replicated onward
    assert divergence(items((4, 1), (7, 2)), items((4, 1))) is None  # sent again
    assert divergence(items((4, 1), (6, 2)), items((4, 1), (9, 2))) is None


def test_the_higher_last_version_wins() -> None:
    ours, theirs = items((8, 1)), items((4, 1), (7, 2))
    assert divergence(ours, theirs) == Divergence(4, True, "8@v1")
    assert divergence(theirs, ours) == Divergence(4, False, "7@v2")
    assert divergence(items((4, 1), (6, 12)), items((4, 1), (9, 2))) == Divergence(
        4, False, "6@v12"
    )


def test_histories_sharing_no_event_cannot_be_resolved() -> None:
    with pytest.raises(UnresolvableConflict, match="share no event"):
        divergence(items((4, 2)), items((3, 1), (6, 12)))
    with pytest.raises(UnresolvableConflict):
        divergence(items((4, 1)), items((4, 2)))
