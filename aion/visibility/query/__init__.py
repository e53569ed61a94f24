"""Temporal's visibility list-filter language: parse, validate and evaluate in memory.

`parse_query` turns the `query` string of ListWorkflowExecutions / CountWorkflowExecutions
into a `ListQuery` whose `matches(record)` evaluates the filter on one workflow's visibility
record (a mapping of search attribute name to Python value; a missing key is NULL).

Behaviour follows the reference Temporal server (1.32, SQL/SQLite visibility, as bundled in
the Temporal CLI dev server), including its error messages:

* Filters use SQL three-valued logic: a comparison on a NULL attribute is unknown, `NOT`
  of unknown is unknown, and a record matches only when the filter is true. KeywordList
  and Text comparisons never yield unknown: `!=` / `NOT IN` on a missing value is true.
* Keyword `STARTS_WITH` is case-insensitive for ASCII letters (SQLite `LIKE`); Keyword `=`,
  `IN` and ordering comparisons are case-sensitive.
* KeywordList `=` means "some element equals", compared case-insensitively (SQLite FTS).
* Text `=` is a full-text match, case-insensitive: the value is split on spaces and the
  record matches when any piece occurs as a run of words in the attribute (a word is a run
  of letters and digits). No stemming or diacritic folding.
* ExecutionStatus literals may be names (`'Running'`, `'WORKFLOW_EXECUTION_STATUS_RUNNING'`)
  or enum numbers; ordering compares enum numbers. ExecutionDuration literals may be
  nanoseconds or duration strings (`'1h30m'`, `'1.5s'`, `'2d'`, `'01:30:00'`).
* Datetime literals are RFC 3339 strings or integer Unix nanoseconds; values are compared at
  microsecond precision (Python `datetime`).
* A filter that does not mention TemporalNamespaceDivision only matches records without one
  (this hides internal workflows such as schedulers), as in Temporal.
* `ORDER BY` is rejected like Temporal's SQL visibility does, unless `allow_order_by=True`
  (Temporal's Elasticsearch visibility accepts it). `GROUP BY` takes one field, ExecutionStatus
  (or TemporalNamespaceDivision). `LIMIT` is rejected as in Temporal; so is `HAVING`, which
  Temporal silently ignores.

The package reads in pipeline order: `lexer` (tokens) → `parser` (the raw tree of `syntax`) →
`validate` (`parse_query`: names resolved, values typed by `literals`, giving the tree of
`filters`) → `ordering` (sorting and GROUP BY counts). `schema` holds the types and names they
share.
"""

from aion.common.search_attribute_values import parse_datetime
from aion.visibility.query.filters import (
    And,
    Between,
    Comparison,
    Expr,
    IsNull,
    ListQuery,
    Not,
    Or,
)
from aion.visibility.query.literals import (
    datetime_from_nanos,
    parse_duration,
)
from aion.visibility.query.ordering import (
    group_counts,
    sort_records,
)
from aion.visibility.query.schema import (
    BOOL,
    DATETIME,
    DOUBLE,
    EXECUTION_DURATION,
    EXECUTION_STATUS,
    EXECUTION_STATUSES,
    INT,
    KEYWORD,
    KEYWORD_LIST,
    NAMESPACE_DIVISION,
    PREDEFINED_SEARCH_ATTRIBUTES,
    TEXT,
    TYPE_NAMES,
    QueryError,
    SearchAttributeType,
)
from aion.visibility.query.validate import (
    parse_query,
)

__all__ = [
    "And",
    "BOOL",
    "Between",
    "Comparison",
    "DATETIME",
    "DOUBLE",
    "EXECUTION_DURATION",
    "EXECUTION_STATUS",
    "EXECUTION_STATUSES",
    "Expr",
    "INT",
    "IsNull",
    "KEYWORD",
    "KEYWORD_LIST",
    "ListQuery",
    "NAMESPACE_DIVISION",
    "Not",
    "Or",
    "PREDEFINED_SEARCH_ATTRIBUTES",
    "QueryError",
    "SearchAttributeType",
    "TEXT",
    "TYPE_NAMES",
    "datetime_from_nanos",
    "group_counts",
    "parse_datetime",
    "parse_duration",
    "parse_query",
    "sort_records",
]
