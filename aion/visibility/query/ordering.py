"""Sorting of listed records and GROUP BY counts, in Temporal's order."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from aion.visibility.query.filters import order_key, record_value
from aion.visibility.query.schema import KEYWORD

R = TypeVar("R", bound=Mapping[str, Any])

_DEFAULT_ORDER: tuple[tuple[str, bool, bool], ...] = (
    ("CloseTime", True, True),  # open executions (no CloseTime) first
    ("StartTime", True, False),
    ("RunId", False, False),
)


def sort_records(records: Iterable[R], order_by: Sequence[tuple[str, bool]]) -> list[R]:
    """Sort records as Temporal lists them.

    Without `order_by`: open executions first, then CloseTime descending, StartTime
    descending, RunId ascending (Temporal's SQL visibility order). With it: by each
    (name, descending) key, missing values last, then RunId ascending as tie-breaker.
    """
    keys: list[tuple[str, bool, bool]]
    if order_by:
        keys = [(name, desc, False) for name, desc in order_by]
        if all(name != "RunId" for name, _ in order_by):
            keys.append(("RunId", False, False))
    else:
        keys = list(_DEFAULT_ORDER)

    def compare(a: R, b: R) -> int:
        for name, descending, nulls_first in keys:
            va = order_key(name, _plain_value(a, name))
            vb = order_key(name, _plain_value(b, name))
            if va is None and vb is None:
                continue
            if va is None or vb is None:
                a_first = (va is None) == nulls_first
                return -1 if a_first else 1
            if va == vb:
                continue
            result = -1 if va < vb else 1
            return -result if descending else result
        return 0

    return sorted(records, key=functools.cmp_to_key(compare))


def _plain_value(record: Mapping[str, Any], name: str) -> Any:
    value = record_value(record, name, KEYWORD)
    return tuple(value) if isinstance(value, list) else value


def group_counts(
    records: Iterable[Mapping[str, Any]], group_by: Sequence[str]
) -> list[tuple[tuple[Any, ...], int]]:
    """Count records per distinct value tuple of `group_by` (None for a missing value, which
    Temporal reports as an empty string).

    Groups come in ascending order (ExecutionStatus by enum number), as Temporal returns
    them; without `group_by` there are no groups.
    """
    if not group_by:
        return []
    counts: dict[tuple[Any, ...], int] = {}
    for record in records:
        key = tuple(_plain_value(record, name) for name in group_by)
        counts[key] = counts.get(key, 0) + 1

    def sort_key(item: tuple[tuple[Any, ...], int]) -> tuple[tuple[bool, Any], ...]:
        return tuple(
            (v is not None, order_key(name, v) if v is not None else 0)
            for name, v in zip(group_by, item[0], strict=True)
        )

    return sorted(counts.items(), key=sort_key)
