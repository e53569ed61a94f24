"""Storage behind one interface (`Store`): SQLite (`sqlite`) and PostgreSQL (`postgres`)."""

from aion.persistence.store import (
    ConditionFailedError,
    CurrentExecution,
    ExecutionRecord,
    ExecutionTransaction,
    NamespaceRecord,
    QueueTask,
    SchemaTooNewError,
    SearchAttributeRecord,
    ShardOwnershipLostError,
    Store,
    TimerTask,
    VisibilityRecord,
)

__all__ = [
    "ConditionFailedError",
    "CurrentExecution",
    "ExecutionRecord",
    "ExecutionTransaction",
    "NamespaceRecord",
    "QueueTask",
    "SearchAttributeRecord",
    "SchemaTooNewError",
    "ShardOwnershipLostError",
    "Store",
    "TimerTask",
    "VisibilityRecord",
]
