"""What happens after a commit: durable timer tasks fire (timers, timeouts, retries) and transfer
tasks act on other executions (children, parents, signals, cancels, schedules)."""
