"""History: the engine that loads, locks, mutates and commits executions (`engine`), mutable
state, one module per API operation (`api`), the task executors (`tasks`), and the interfaces it
calls out through (`ports`)."""
