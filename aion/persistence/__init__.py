"""Storage behind one interface (`Store`): SQLite (`sqlite`) and PostgreSQL (`postgres`)."""

from aion.persistence.store import (
    ConditionFailedError,
    CurrentExecution,
    ExecutionRecord,
    ExecutionTransaction,
    NamespaceRecord,
    QueueTask,
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
    "ShardOwnershipLostError",
    "Store",
    "TimerTask",
    "VisibilityRecord",
]
