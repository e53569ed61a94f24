"""Visibility: the list-filter query language."""

from aion.visibility.query import (
    PREDEFINED_SEARCH_ATTRIBUTES,
    ListQuery,
    QueryError,
    group_counts,
    parse_query,
    sort_records,
)

__all__ = [
    "PREDEFINED_SEARCH_ATTRIBUTES",
    "ListQuery",
    "QueryError",
    "group_counts",
    "parse_query",
    "sort_records",
]
