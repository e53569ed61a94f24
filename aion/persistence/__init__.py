"""Storage behind one interface (`Store`): SQLite (`sqlite`) and PostgreSQL (`postgres`)."""

from aion.persistence.store import (
    ConditionFailedError,
    CurrentExecution,
    ExecutionRecord,
    ExecutionTransaction,
    HostRecord,
    NamespaceRecord,
    QueueTask,
    SchemaTooNewError,
    SchemaTooOldError,
    SearchAttributeRecord,
    ShardCountMismatchError,
    ShardOwnershipLostError,
    Store,
    StoreUnavailableError,
    TimerTask,
    VisibilityRecord,
)

__all__ = [
    "ConditionFailedError",
    "CurrentExecution",
    "ExecutionRecord",
    "ExecutionTransaction",
    "HostRecord",
    "NamespaceRecord",
    "QueueTask",
    "SearchAttributeRecord",
    "SchemaTooNewError",
    "SchemaTooOldError",
    "ShardCountMismatchError",
    "ShardOwnershipLostError",
    "Store",
    "StoreUnavailableError",
    "TimerTask",
    "VisibilityRecord",
]
