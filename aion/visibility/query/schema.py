"""Search attribute types, system attributes, execution status names and the query error."""

from __future__ import annotations

import re
from typing import TypeAlias

from temporalio.api.enums.v1 import IndexedValueType

SearchAttributeType: TypeAlias = int
"""A `temporalio.api.enums.v1.IndexedValueType` value."""

TEXT = IndexedValueType.INDEXED_VALUE_TYPE_TEXT
KEYWORD = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
INT = IndexedValueType.INDEXED_VALUE_TYPE_INT
DOUBLE = IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE
BOOL = IndexedValueType.INDEXED_VALUE_TYPE_BOOL
DATETIME = IndexedValueType.INDEXED_VALUE_TYPE_DATETIME
KEYWORD_LIST = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST

PREDEFINED_SEARCH_ATTRIBUTES: dict[str, int] = {
    "BatcherNamespace": KEYWORD,
    "BatcherUser": KEYWORD,
    "BinaryChecksums": KEYWORD_LIST,
    "BuildIds": KEYWORD_LIST,
    "CloseTime": DATETIME,
    "ExecutionDuration": INT,
    "ExecutionStatus": KEYWORD,
    "ExecutionTime": DATETIME,
    "HistoryLength": INT,
    "HistorySizeBytes": INT,
    "ParentRunId": KEYWORD,
    "ParentWorkflowId": KEYWORD,
    "RootRunId": KEYWORD,
    "RootWorkflowId": KEYWORD,
    "RunId": KEYWORD,
    "StartTime": DATETIME,
    "StateTransitionCount": INT,
    "TaskQueue": KEYWORD,
    "TemporalChangeVersion": KEYWORD_LIST,
    "TemporalExternalPayloadCount": INT,
    "TemporalExternalPayloadSizeBytes": INT,
    "TemporalNamespaceDivision": KEYWORD,
    "TemporalPauseInfo": KEYWORD_LIST,
    "TemporalReportedProblems": KEYWORD_LIST,
    "TemporalSchedulePaused": BOOL,
    "TemporalScheduledById": KEYWORD,
    "TemporalScheduledStartTime": DATETIME,
    "TemporalUsedWorkerDeploymentVersions": KEYWORD_LIST,
    "TemporalWorkerDeployment": KEYWORD,
    "TemporalWorkerDeploymentVersion": KEYWORD,
    "TemporalWorkflowVersioningBehavior": KEYWORD,
    "WorkflowId": KEYWORD,
    "WorkflowType": KEYWORD,
}
"""Temporal's system search attributes (as a 1.32 server lists them) and their types."""

TYPE_NAMES: dict[int, str] = {
    IndexedValueType.INDEXED_VALUE_TYPE_UNSPECIFIED: "Unspecified",
    TEXT: "Text",
    KEYWORD: "Keyword",
    INT: "Int",
    DOUBLE: "Double",
    BOOL: "Bool",
    DATETIME: "Datetime",
    KEYWORD_LIST: "KeywordList",
}
"""Type names as Temporal prints them in messages."""

EXECUTION_STATUSES: tuple[str, ...] = (
    "Unspecified",
    "Running",
    "Completed",
    "Failed",
    "Canceled",
    "Terminated",
    "ContinuedAsNew",
    "TimedOut",
    "Paused",
)
"""ExecutionStatus names as queries use them, indexed by WorkflowExecutionStatus number."""

STATUS_RANK: dict[str, int] = {name: i for i, name in enumerate(EXECUTION_STATUSES)}
STATUS_BY_LITERAL: dict[str, str] = {
    **{name: name for name in EXECUTION_STATUSES},
    **{
        "WORKFLOW_EXECUTION_STATUS_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper(): name
        for name in EXECUTION_STATUSES
    },
}

EXECUTION_STATUS = "ExecutionStatus"
EXECUTION_DURATION = "ExecutionDuration"
NAMESPACE_DIVISION = "TemporalNamespaceDivision"


INVALID = "invalid expression"
UNSUPPORTED = "operation is not supported"


class QueryError(ValueError):
    """An invalid visibility query; the message is what Temporal answers as INVALID_ARGUMENT."""

    def __init__(self, message: str) -> None:
        super().__init__(f"invalid query: {message}")
