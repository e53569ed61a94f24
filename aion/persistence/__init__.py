"""Storage behind one interface (`Store`): one SQL logic (`sql`) in two dialects, SQLite
(`sqlite`) and PostgreSQL (`postgres`)."""

from aion.persistence.store import (
    ConditionFailedError,
    CurrentExecution,
    DeploymentRecord,
    ExecutionRecord,
    ExecutionTransaction,
    HostRecord,
    NamespaceRecord,
    QueueTask,
    ScheduleRecord,
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
    "DeploymentRecord",
    "ExecutionRecord",
    "ExecutionTransaction",
    "HostRecord",
    "NamespaceRecord",
    "QueueTask",
    "ScheduleRecord",
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
