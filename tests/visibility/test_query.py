"""Unit tests for the visibility list-filter language (aion.visibility.query).

Expected results and error messages were checked against a Temporal 1.32 dev server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aion.visibility.query import (
    BOOL,
    DATETIME,
    DOUBLE,
    INT,
    KEYWORD,
    KEYWORD_LIST,
    PREDEFINED_SEARCH_ATTRIBUTES,
    TEXT,
    And,
    Comparison,
    ListQuery,
    Or,
    QueryError,
    group_counts,
    parse_datetime,
    parse_duration,
    parse_query,
    sort_records,
)

TYPES: dict[str, int] = {
    **PREDEFINED_SEARCH_ATTRIBUTES,
    "CustomKeywordField": KEYWORD,
    "CustomTextField": TEXT,
    "CustomIntField": INT,
    "CustomDoubleField": DOUBLE,
    "CustomBoolField": BOOL,
    "CustomDatetimeField": DATETIME,
    "CustomKeywordListField": KEYWORD_LIST,
    "Custom Field": KEYWORD,
}

T0 = datetime(2024, 1, 1, tzinfo=UTC)

RECORDS: list[dict[str, Any]] = [
    {
        "WorkflowId": "wf-a",
        "RunId": "run-a",
        "WorkflowType": "MyWF",
        "StartTime": T0 + timedelta(minutes=1),
        "ExecutionStatus": "Running",
        "CustomKeywordField": "apple",
        "CustomTextField": "Hello World foo",
        "CustomIntField": 1,
        "CustomDoubleField": 1.5,
        "CustomBoolField": True,
        "CustomDatetimeField": datetime(2024, 1, 1, tzinfo=UTC),
        "CustomKeywordListField": ["x", "y"],
    },
    {
        "WorkflowId": "wf-b",
        "RunId": "run-b",
        "WorkflowType": "MyWF",
        "StartTime": T0 + timedelta(minutes=2),
        "ExecutionStatus": "Running",
        "CustomKeywordField": "Banana",
        "CustomTextField": "hello-there",
        "CustomIntField": 5,
        "CustomDoubleField": -2.0,
        "CustomBoolField": False,
        "CustomDatetimeField": datetime(2025, 1, 1, tzinfo=UTC),
        "CustomKeywordListField": ["y", "z"],
    },
    {
        "WorkflowId": "WF-C",
        "RunId": "run-c",
        "WorkflowType": "MyWF",
        "StartTime": T0 + timedelta(minutes=3),
        "ExecutionStatus": "Running",
        "CustomKeywordField": "apple pie",
        "CustomIntField": 10,
    },
    {
        "WorkflowId": "wf-d",
        "RunId": "run-d",
        "WorkflowType": "MyWF",
        "StartTime": T0,
        "CloseTime": T0 + timedelta(minutes=5),
        "ExecutionDuration": 300 * 10**9,
        "ExecutionStatus": "Terminated",
    },
    {
        "WorkflowId": "wf_e%",
        "RunId": "run-e",
        "WorkflowType": "OtherWF",
        "StartTime": T0 + timedelta(minutes=4),
        "ExecutionStatus": "Running",
        "CustomKeywordField": "a_b",
        "Custom Field": "spaced",
    },
    {
        "WorkflowId": "temporal-sys-scheduler:s",
        "RunId": "run-s",
        "WorkflowType": "TemporalScheduler",
        "StartTime": T0,
        "ExecutionStatus": "Running",
        "TemporalNamespaceDivision": "TemporalScheduler",
    },
]


def ids(query: str) -> set[str]:
    parsed = parse_query(query, TYPES)
    return {r["WorkflowId"] for r in RECORDS if parsed.matches(r)}


def error(query: str, **kwargs: Any) -> str:
    with pytest.raises(QueryError) as info:
        parse_query(query, TYPES, **kwargs)
    return str(info.value)


ALL_VISIBLE = {"wf-a", "wf-b", "WF-C", "wf-d", "wf_e%"}


# --------------------------------------------------------------------------- structure


def test_empty_query_matches_everything_but_internal_workflows() -> None:
    parsed = parse_query("", TYPES)
    assert parsed == ListQuery()
    assert ids("") == ids("   ") == ALL_VISIBLE


def test_parse_result_shape() -> None:
    parsed = parse_query("WorkflowType = 'x' AND (CustomIntField > 1 OR RunId = 'r')", TYPES)
    assert parsed.where == And(
        (
            Comparison("WorkflowType", KEYWORD, "=", "x"),
            Or(
                (
                    Comparison("CustomIntField", INT, ">", 1),
                    Comparison("RunId", KEYWORD, "=", "r"),
                )
            ),
        )
    )
    assert parsed.order_by == [] and parsed.group_by == []


def test_and_chains_are_flattened() -> None:
    parsed = parse_query("RunId = 'a' AND RunId = 'b' AND RunId = 'c'", TYPES)
    assert isinstance(parsed.where, And) and len(parsed.where.operands) == 3


def test_namespace_division_hidden_unless_mentioned() -> None:
    assert ids("WorkflowType = 'TemporalScheduler'") == set()
    assert ids("TemporalNamespaceDivision IS NOT NULL") == {"temporal-sys-scheduler:s"}
    every = ids("TemporalNamespaceDivision IS NULL OR TemporalNamespaceDivision IS NOT NULL")
    assert every == ALL_VISIBLE | {"temporal-sys-scheduler:s"}


# --------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("WorkflowId = 'wf-a'", {"wf-a"}),
        ('WorkflowId = "wf-a"', {"wf-a"}),
        ("`WorkflowId` = 'wf-a'", {"wf-a"}),
        ("WorkflowId != 'wf-a'", ALL_VISIBLE - {"wf-a"}),
        ("WorkflowId <> 'wf-a'", ALL_VISIBLE - {"wf-a"}),
        ("CustomKeywordField = 'APPLE'", set()),
        ("CustomKeywordField > 'apple'", {"WF-C"}),
        ("CustomKeywordField >= 'apple'", {"wf-a", "WF-C"}),
        ("CustomKeywordField < 'a_c'", {"wf-b", "wf_e%"}),
        ("CustomKeywordField <= 'Banana'", {"wf-b"}),
        ("CustomKeywordField IN ('apple', 'Banana', 'nope')", {"wf-a", "wf-b"}),
        ("CustomKeywordField NOT IN ('apple')", {"wf-b", "WF-C", "wf_e%"}),
        ("CustomKeywordField BETWEEN 'a' AND 'b'", {"wf-a", "WF-C", "wf_e%"}),
        ("CustomKeywordField NOT BETWEEN 'a' AND 'b'", {"wf-b"}),
        ("CustomKeywordField STARTS_WITH 'app'", {"wf-a", "WF-C"}),
        ("CustomKeywordField NOT STARTS_WITH 'app'", {"wf-b", "wf_e%"}),
        ("CustomKeywordField STARTS_WITH ''", {"wf-a", "wf-b", "WF-C", "wf_e%"}),
        ("WorkflowId STARTS_WITH 'wf_'", {"wf_e%"}),  # no LIKE wildcards
        ("WorkflowId STARTS_WITH 'Wf_E%'", {"wf_e%"}),  # ASCII case-insensitive, like SQLite
        ("CustomIntField = 1", {"wf-a"}),
        ("CustomIntField = 1.0", {"wf-a"}),
        ("CustomIntField = 1e0", {"wf-a"}),
        ("CustomIntField = +1", {"wf-a"}),
        ("CustomIntField != 1", {"wf-b", "WF-C"}),
        ("CustomIntField > 1.5", {"wf-b", "WF-C"}),
        ("CustomIntField >= 5", {"wf-b", "WF-C"}),
        ("CustomIntField < 5", {"wf-a"}),
        ("CustomIntField <= 5", {"wf-a", "wf-b"}),
        ("CustomIntField IN (1, 10)", {"wf-a", "WF-C"}),
        ("CustomIntField NOT IN (1, 10)", {"wf-b"}),
        ("CustomIntField BETWEEN 1 AND 5", {"wf-a", "wf-b"}),
        ("CustomIntField BETWEEN 5 AND 1", set()),
        ("CustomIntField NOT BETWEEN 2 AND 20", {"wf-a"}),
        ("CustomIntField > -1", {"wf-a", "wf-b", "WF-C"}),
        ("CustomIntField = - -5", {"wf-b"}),
        ("CustomDoubleField < 0", {"wf-b"}),
        ("CustomDoubleField = 1.5", {"wf-a"}),
        ("CustomDoubleField > 1", {"wf-a"}),
        ("CustomDoubleField = -2", {"wf-b"}),
        ("CustomDoubleField BETWEEN -2.5 AND 1.5", {"wf-a", "wf-b"}),
        ("CustomBoolField = true", {"wf-a"}),
        ("CustomBoolField = FALSE", {"wf-b"}),
        ("CustomBoolField != true", {"wf-b"}),
        ("CustomBoolField > false", {"wf-a"}),
        ("CustomBoolField IN (true, false)", {"wf-a", "wf-b"}),
        ("CustomIntField IS NULL", {"wf-d", "wf_e%"}),
        ("CustomIntField IS NOT NULL", {"wf-a", "wf-b", "WF-C"}),
        ("CloseTime IS NULL", ALL_VISIBLE - {"wf-d"}),
        ("CloseTime is not null", {"wf-d"}),
        ("`Custom Field` = 'spaced'", {"wf_e%"}),
    ],
)
def test_operators(query: str, expected: set[str]) -> None:
    assert ids(query) == expected


def test_keywords_are_case_insensitive() -> None:
    query = "customIntField in (1) and not CustomBoolField Is Null or WorkflowId starts_with 'wf-b'"
    with pytest.raises(QueryError):
        parse_query(query, TYPES)  # attribute names are case-sensitive
    assert ids(query.replace("customIntField", "CustomIntField")) == {"wf-a", "wf-b"}


def test_null_semantics_are_three_valued() -> None:
    # wf-d and wf_e% have no CustomIntField: every comparison on it is unknown, even negated.
    assert ids("CustomIntField != 5") == {"wf-a", "WF-C"}
    assert ids("NOT CustomIntField = 5") == {"wf-a", "WF-C"}
    assert ids("NOT (CustomKeywordField = 'apple' OR CustomIntField = 5)") == {"WF-C"}
    assert ids("CustomIntField = 5 OR CustomKeywordField = 'a_b'") == {"wf-b", "wf_e%"}
    assert ids("NOT (CustomIntField = 5 AND CustomKeywordField = 'x')") == {
        "wf-a",
        "wf-b",
        "WF-C",
        "wf_e%",
    }


# --------------------------------------------------------------------------- precedence


def test_and_binds_tighter_than_or() -> None:
    query = "CustomKeywordField = 'apple' OR CustomIntField = 5 AND CustomBoolField = true"
    assert ids(query) == {"wf-a"}
    assert ids("WorkflowId = 'wf-a' AND WorkflowId = 'wf-b' OR WorkflowId = 'wf-d'") == {"wf-d"}
    assert ids("WorkflowId = 'wf-d' OR WorkflowId = 'wf-a' AND CustomIntField = 5") == {"wf-d"}


def test_parentheses_override_precedence() -> None:
    query = "(CustomKeywordField = 'apple' OR CustomIntField = 5) AND CustomBoolField = false"
    assert ids(query) == {"wf-b"}
    assert ids("WorkflowId = 'wf-d' OR (WorkflowId = 'wf-a' AND CustomIntField = 5)") == {"wf-d"}
    assert ids("(WorkflowId = 'wf-d' OR WorkflowId = 'wf-a') AND CustomIntField = 1") == {"wf-a"}


def test_nested_parentheses_and_not() -> None:
    assert ids("((CustomIntField = 5) OR (((CustomKeywordField = 'a_b'))))") == {"wf-b", "wf_e%"}
    assert ids("NOT NOT CustomIntField = 5") == {"wf-b"}
    assert ids("NOT (NOT (WorkflowId = 'wf-a'))") == {"wf-a"}
    # NOT binds tighter than AND, which binds tighter than OR.
    query = "CustomIntField = 1 and CustomIntField = 2 or not CustomIntField = 3"
    assert ids(query) == {"wf-a", "wf-b", "WF-C"}


def test_symbolic_logical_operators() -> None:
    assert ids("CustomIntField > 1 && CustomIntField < 8") == {"wf-b"}
    assert ids("CustomIntField > 5 || CustomBoolField = true") == {"wf-a", "WF-C"}


# --------------------------------------------------------------------------- types


def test_datetime_comparisons() -> None:
    assert ids("CustomDatetimeField > '2024-06-01T00:00:00Z'") == {"wf-b"}
    assert ids("CustomDatetimeField = '2024-01-01T01:00:00+01:00'") == {"wf-a"}
    assert ids("CustomDatetimeField <= '2023-12-31T19:00:00-05:00'") == {"wf-a"}
    assert ids("CustomDatetimeField > 1704067200000000000") == {"wf-b"}
    assert ids("CustomDatetimeField = 1704067200000000000") == {"wf-a"}
    query = "StartTime BETWEEN '2024-01-01T00:00:30Z' AND '2024-01-01T00:02:00.000Z'"
    assert ids(query) == {"wf-a", "wf-b"}
    assert ids("CloseTime > '2024-01-01T00:04:59.999999999Z'") == {"wf-d"}


def test_parse_datetime() -> None:
    assert parse_datetime("2024-01-01T00:00:00Z") == T0
    assert parse_datetime("2024-01-01T02:00:00.5+02:00") == T0 + timedelta(milliseconds=500)
    assert parse_datetime("2024-01-01T00:00:00.123456789Z") == T0 + timedelta(microseconds=123456)
    for bad in (
        "2024-01-01",
        "2024-01-01T00:00:00",
        "2024-01-01 00:00:00Z",
        "2024-02-30T00:00:00Z",
    ):
        assert parse_datetime(bad) is None
    assert parse_datetime("2024-01-01t00:00:00z") is None


def test_keyword_list_means_contains() -> None:
    assert ids("CustomKeywordListField = 'y'") == {"wf-a", "wf-b"}
    assert ids("CustomKeywordListField = 'Y'") == {"wf-a", "wf-b"}  # like SQLite's FTS
    assert ids("CustomKeywordListField = 'x y'") == set()
    assert ids("CustomKeywordListField IN ('x', 'z')") == {"wf-a", "wf-b"}
    assert ids("CustomKeywordListField IN ('q')") == set()
    # Negations are plain complements: records without the attribute match.
    assert ids("CustomKeywordListField != 'x'") == ALL_VISIBLE - {"wf-a"}
    assert ids("CustomKeywordListField NOT IN ('x', 'z')") == ALL_VISIBLE - {"wf-a", "wf-b"}
    assert ids("NOT CustomKeywordListField = 'x'") == ALL_VISIBLE - {"wf-a"}
    assert ids("CustomKeywordListField IS NULL") == {"WF-C", "wf-d", "wf_e%"}


def test_keyword_list_record_shapes() -> None:
    parsed = parse_query("BuildIds = 'b1'", TYPES)
    assert parsed.matches({"BuildIds": ["b0", "b1"]})
    assert parsed.matches({"BuildIds": "b1"})
    assert not parsed.matches({"BuildIds": []})
    assert parse_query("BuildIds IS NULL", TYPES).matches({"BuildIds": []})


def test_text_is_word_match() -> None:
    assert ids("CustomTextField = 'hello'") == {"wf-a", "wf-b"}
    assert ids("CustomTextField = 'HELLO'") == {"wf-a", "wf-b"}
    assert ids("CustomTextField = 'hell'") == set()
    assert ids("CustomTextField = 'there'") == {"wf-b"}
    assert ids("CustomTextField = 'hello nothing'") == {"wf-a", "wf-b"}  # any space-separated piece
    assert ids("CustomTextField = 'foo world'") == {"wf-a"}
    assert ids("CustomTextField = 'HELLO-world'") == {"wf-a"}  # a piece is a phrase
    assert ids("CustomTextField = 'world-hello'") == set()
    assert ids("CustomTextField = '---'") == set()
    assert ids("CustomTextField != 'hello'") == ALL_VISIBLE - {"wf-a", "wf-b"}


def test_execution_status() -> None:
    running = {"wf-a", "wf-b", "WF-C", "wf_e%"}
    assert ids("ExecutionStatus = 'Running'") == running
    assert ids("ExecutionStatus = 'WORKFLOW_EXECUTION_STATUS_TERMINATED'") == {"wf-d"}
    assert ids("ExecutionStatus = 5") == {"wf-d"}
    assert ids("ExecutionStatus != 'Running'") == {"wf-d"}
    assert ids("ExecutionStatus IN ('ContinuedAsNew', 'TimedOut', 1)") == running
    # Ordering compares enum numbers: Running(1) < Completed(2) < ... < Terminated(5).
    assert ids("ExecutionStatus < 'Completed'") == running
    assert ids("ExecutionStatus BETWEEN 'Running' AND 'Completed'") == running
    assert ids("ExecutionStatus > 'Canceled'") == {"wf-d"}
    assert parse_query("ExecutionStatus = 'Failed'", TYPES).matches({"ExecutionStatus": 3})


def test_execution_duration() -> None:
    assert ids("ExecutionDuration > '4m'") == {"wf-d"}
    assert ids("ExecutionDuration = '00:05:00'") == {"wf-d"}
    assert ids("ExecutionDuration < 300000000001") == {"wf-d"}
    assert ids("ExecutionDuration > '1h'") == set()
    assert ids("ExecutionDuration IS NULL") == ALL_VISIBLE - {"wf-d"}
    parsed = parse_query("ExecutionDuration BETWEEN '1s' AND '1.5s'", TYPES)
    assert parsed.matches({"ExecutionDuration": timedelta(milliseconds=1200)})


def test_parse_duration() -> None:
    assert parse_duration("1500") == 1500
    assert parse_duration("1h30m") == 5400 * 10**9
    assert parse_duration("-1.5s") == -1_500_000_000
    assert parse_duration("2d") == 2 * 86400 * 10**9
    assert parse_duration("10µs") == 10_000
    assert parse_duration("0") == 0
    assert parse_duration("01:02:03") == 3723 * 10**9
    for bad in ("", "1w", "abc", "1h30", ".s", "1:2:3"):
        assert parse_duration(bad) is None


def test_attribute_aliases() -> None:
    assert parse_query("TemporalBuildIds = 'b'", TYPES).where == Comparison(
        "BuildIds", KEYWORD_LIST, "=", "b"
    )
    assert parse_query("ChangeVersion = 'v'", TYPES).where == Comparison(
        "TemporalChangeVersion", KEYWORD_LIST, "=", "v"
    )
    assert parse_query("ScheduleId = 's'", TYPES).where == Comparison(
        "WorkflowId", KEYWORD, "=", "s"
    )
    with_custom = {**TYPES, "ScheduleId": KEYWORD}
    assert parse_query("ScheduleId = 's'", with_custom).where == Comparison(
        "ScheduleId", KEYWORD, "=", "s"
    )


def test_string_literals() -> None:
    assert parse_query("RunId = 'it''s'", TYPES).where == Comparison("RunId", KEYWORD, "=", "it's")
    assert parse_query(r"RunId = 'it\'s'", TYPES).where == Comparison("RunId", KEYWORD, "=", "it's")
    assert parse_query('RunId = "a\'b"', TYPES).where == Comparison("RunId", KEYWORD, "=", "a'b")
    assert parse_query(r"RunId = 'a\nb'", TYPES).where == Comparison("RunId", KEYWORD, "=", "a\nb")


def test_comments_and_semicolon() -> None:
    assert ids("WorkflowId = 'wf-a'; ") == {"wf-a"}
    assert ids("WorkflowId = 'wf-a' -- trailing comment") == {"wf-a"}
    assert ids("WorkflowId = /* inline */ 'wf-a' # hash comment") == {"wf-a"}


# --------------------------------------------------------------------------- ORDER / GROUP BY


def test_order_by_rejected_by_default_like_sql_visibility() -> None:
    message = "invalid query: operation is not supported: 'ORDER BY' clause"
    assert error("WorkflowType = 'x' ORDER BY StartTime DESC") == message
    assert error("ORDER BY StartTime") == message


def test_order_by_when_allowed() -> None:
    query = "WorkflowType = 'x' AND ExecutionStatus = 'Running' ORDER BY StartTime DESC, RunId"
    parsed = parse_query(query, TYPES, allow_order_by=True)
    assert parsed.order_by == [("StartTime", True), ("RunId", False)]
    parsed = parse_query("order by CustomIntField asc", TYPES, allow_order_by=True)
    assert parsed.where is None and parsed.order_by == [("CustomIntField", False)]
    assert error("ORDER BY CustomTextField", allow_order_by=True) == (
        "invalid query: operation is not supported: unable to sort by search attribute type Text"
    )
    assert error("GROUP BY ExecutionStatus ORDER BY StartTime", allow_order_by=True) == (
        "invalid query: operation is not supported: 'ORDER BY' clause is not supported with "
        "'GROUP BY' clause"
    )
    assert error("ORDER BY StartTime GROUP BY ExecutionStatus", allow_order_by=True) == (
        "invalid query: malformed SQL query: syntax error at position 46 near 'group'"
    )


def test_group_by() -> None:
    assert parse_query("GROUP BY ExecutionStatus", TYPES).group_by == ["ExecutionStatus"]
    parsed = parse_query("CustomIntField > 1 group by `ExecutionStatus`", TYPES)
    assert parsed.group_by == ["ExecutionStatus"]
    assert parse_query("GROUP BY TemporalNamespaceDivision", TYPES).mentions_namespace_division
    assert error("GROUP BY WorkflowType") == (
        "invalid query: operation is not supported: 'GROUP BY' clause is not supported for "
        "search attribute WorkflowType"
    )
    assert error("GROUP BY ExecutionStatus, WorkflowType") == (
        "invalid query: operation is not supported: 'GROUP BY' clause supports only a single field"
    )
    assert error("GROUP BY ExecutionStatus DESC") == (
        "invalid query: malformed SQL query: syntax error at position 51 near 'desc'"
    )


def test_group_counts() -> None:
    visible = [r for r in RECORDS if parse_query("", TYPES).matches(r)]
    assert group_counts(visible, ["ExecutionStatus"]) == [(("Running",), 4), (("Terminated",), 1)]
    statuses = [{"ExecutionStatus": s} for s in ("TimedOut", "Completed", 1, "Completed")]
    assert group_counts(statuses, ["ExecutionStatus"]) == [
        (("Running",), 1),
        (("Completed",), 2),
        (("TimedOut",), 1),
    ]
    assert group_counts(RECORDS, ["TemporalNamespaceDivision"]) == [
        ((None,), 5),
        (("TemporalScheduler",), 1),
    ]
    assert group_counts(RECORDS, []) == []


def test_sort_records_default_order() -> None:
    records: list[dict[str, Any]] = [
        {"RunId": "c1", "StartTime": T0, "CloseTime": T0 + timedelta(hours=1)},
        {"RunId": "o1", "StartTime": T0},
        {"RunId": "c2", "StartTime": T0, "CloseTime": T0 + timedelta(hours=2)},
        {"RunId": "o3", "StartTime": T0 + timedelta(hours=1)},
        {"RunId": "o2", "StartTime": T0},
    ]
    ordered = [r["RunId"] for r in sort_records(records, [])]
    # Open first (newest start first, then run id), then closed by close time, newest first.
    assert ordered == ["o3", "o1", "o2", "c2", "c1"]


def test_sort_records_explicit_order() -> None:
    records: list[dict[str, Any]] = [
        {"RunId": "a", "CustomIntField": 2},
        {"RunId": "b"},
        {"RunId": "c", "CustomIntField": 1},
        {"RunId": "d", "CustomIntField": 2},
    ]
    ascending = sort_records(records, [("CustomIntField", False)])
    assert [r["RunId"] for r in ascending] == ["c", "a", "d", "b"]  # missing last, RunId ties
    descending = sort_records(records, [("CustomIntField", True)])
    assert [r["RunId"] for r in descending] == ["a", "d", "c", "b"]
    statuses = [{"RunId": s, "ExecutionStatus": s} for s in ("Terminated", "Completed", "Running")]
    by_status = sort_records(statuses, [("ExecutionStatus", False)])
    assert [r["RunId"] for r in by_status] == ["Running", "Completed", "Terminated"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("Foo = 'x'", "invalid search attribute: Foo"),
        ("workflowid = 'a'", "invalid search attribute: workflowid"),
        ("`Other Field` = 'x'", "invalid search attribute: Other Field"),
        ("TemporalFoo = 1", "invalid search attribute: TemporalFoo"),
        ("WorkflowId = ", "malformed SQL query: syntax error at position 40"),
        ("WorkflowId = 'a' OR", "malformed SQL query: syntax error at position 47"),
        ("(WorkflowId = 'a'", "malformed SQL query: syntax error at position 45"),
        ("WorkflowId = 'a')", "malformed SQL query: syntax error at position 45"),
        ("WorkflowId == 'a'", "malformed SQL query: syntax error at position 41"),
        ("WorkflowId = 'a' foo", "malformed SQL query: syntax error at position 48 near 'foo'"),
        (
            "WorkflowId = 'a' AND AND x = 1",
            "malformed SQL query: syntax error at position 52 near 'and'",
        ),
        ("WorkflowId = 'abc", "malformed SQL query: syntax error at position 45 near 'abc'"),
        ("WorkflowId IS 'a'", "malformed SQL query: syntax error at position 45 near 'a'"),
        ("WorkflowId IN ()", "malformed SQL query: syntax error at position 44"),
        ("WorkflowId IN 'a'", "malformed SQL query: syntax error at position 45 near 'a'"),
        ("CustomIntField @ 1", "malformed SQL query: syntax error at position 44 near '@'"),
        ("WorkflowId = 'é' foo", "malformed SQL query: syntax error at position 49 near 'foo'"),
        ("NOT", "malformed SQL query: syntax error at position 31"),
        (
            "CustomIntField > 1 XOR CustomIntField < 3",
            "malformed SQL query: syntax error at position 50 near 'xor'",
        ),
        ("WorkflowId = 'a' LIMIT 10", "operation is not supported: 'LIMIT' clause"),
        (
            "GROUP BY ExecutionStatus HAVING count(*) > 1",
            "operation is not supported: 'HAVING' clause",
        ),
        (
            "CustomTextField > 'a'",
            (
                "operation is not supported: operator '>' not supported for Text type search "
                "attribute 'CustomTextField'"
            ),
        ),
        (
            "CustomTextField IN ('a')",
            (
                "operation is not supported: operator 'IN' not supported for Text type search "
                "attribute 'CustomTextField'"
            ),
        ),
        (
            "CustomKeywordListField STARTS_WITH 'a'",
            (
                "operation is not supported: operator 'STARTS_WITH' not supported for KeywordList "
                "type search attribute 'CustomKeywordListField'"
            ),
        ),
        (
            "WorkflowId LIKE 'a%'",
            (
                "operation is not supported: operator 'LIKE' not supported for Keyword type search "
                "attribute 'WorkflowId'"
            ),
        ),
        (
            "CustomIntField <=> 1",
            (
                "operation is not supported: operator '<=>' not supported for Int type search "
                "attribute 'CustomIntField'"
            ),
        ),
        (
            "CustomIntField = 'a'",
            (
                "invalid expression: invalid value type for search attribute CustomIntField of type "
                'Int: "a" (type: string)'
            ),
        ),
        (
            "CustomIntField STARTS_WITH 'a'",
            (
                "invalid expression: invalid value type for search attribute CustomIntField of type "
                'Int: "a" (type: string)'
            ),
        ),
        (
            "CustomBoolField = 1",
            (
                "invalid expression: invalid value type for search attribute CustomBoolField of type "
                "Bool: 1 (type: int64)"
            ),
        ),
        (
            "CustomKeywordField = -1",
            (
                "invalid expression: invalid value type for search attribute CustomKeywordField of "
                "type Keyword: -1 (type: int64)"
            ),
        ),
        (
            "CustomKeywordField IN ('apple', 1.5)",
            (
                "invalid expression: invalid value type for search attribute CustomKeywordField of "
                "type Keyword: 1.5 (type: float64)"
            ),
        ),
        (
            "CustomBoolField BETWEEN 1 AND 5",
            (
                "invalid expression: cannot do range condition on search attribute 'CustomBoolField' "
                "of type Bool"
            ),
        ),
        (
            "CustomKeywordField IS TRUE",
            "invalid expression: 'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'",
        ),
        ("StartTime > 'bogus'", "invalid expression: unable to parse datetime 'bogus'"),
        (
            "StartTime > '2024-01-01'",
            "invalid expression: unable to parse datetime '2024-01-01'",
        ),
        (
            "ExecutionStatus = 'running'",
            "invalid expression: invalid ExecutionStatus value 'running'",
        ),
        ("ExecutionStatus = 99", "invalid expression: invalid ExecutionStatus value 99"),
        (
            "ExecutionDuration > '1w'",
            "invalid expression: invalid duration value for search attribute ExecutionDuration: 1w",
        ),
        (
            "CustomTextField = '  '",
            (
                "invalid expression: no tokens found filtering on Text type search attribute "
                "CustomTextField"
            ),
        ),
        (
            "WorkflowId = foo",
            (
                "operation is not supported: column name on the right side of comparison expression "
                '(did you forget to quote "foo"?)'
            ),
        ),
        ("CustomIntField", "invalid expression: incomplete expression"),
        ("CustomIntField = 0x1", 'invalid expression: unable to parse value "0x1"'),
        ("CustomIntField = ~1", 'operation is not supported: unary operator "~"'),
        (
            "CustomKeywordField = -'a'",
            "invalid expression: unary operator not supported in \"-'a'\"",
        ),
        (
            "CustomKeywordField = null",
            "invalid expression: unexpected value type *sqlparser.NullVal",
        ),
        ("CustomIntField = (1)", "invalid expression: unexpected value type *sqlparser.ParenExpr"),
        (
            "CustomIntField = 1 + 1",
            "invalid expression: unexpected value type *sqlparser.BinaryExpr",
        ),
        (
            "1 = CustomIntField",
            "invalid expression: must be a column name but was *sqlparser.SQLVal",
        ),
        (
            "abs(CustomIntField) = 1",
            "invalid expression: must be a column name but was *sqlparser.FuncExpr",
        ),
        ("StartTime > now()", "operation is not supported: nested func"),
        (
            "CustomIntField BETWEEN 1 AND 2 AND 3",
            "operation is not supported: expression of type *sqlparser.SQLVal",
        ),
    ],
)
def test_errors(query: str, message: str) -> None:
    assert error(query) == "invalid query: " + message


def test_query_error_is_value_error() -> None:
    assert issubclass(QueryError, ValueError)


def test_predefined_attributes() -> None:
    assert PREDEFINED_SEARCH_ATTRIBUTES["ExecutionStatus"] == KEYWORD
    assert PREDEFINED_SEARCH_ATTRIBUTES["StartTime"] == DATETIME
    assert PREDEFINED_SEARCH_ATTRIBUTES["BuildIds"] == KEYWORD_LIST
    assert PREDEFINED_SEARCH_ATTRIBUTES["HistoryLength"] == INT
    assert PREDEFINED_SEARCH_ATTRIBUTES["TemporalSchedulePaused"] == BOOL
    assert len(PREDEFINED_SEARCH_ATTRIBUTES) == 33
