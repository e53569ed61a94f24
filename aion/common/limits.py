"""Temporal's per-execution limits: their defaults and the dynamic config keys that set them.

The server builds one `Limits` from its dynamic config (`apply`); the history engine, the search
attribute registry and the operations that check a request all read that one object. The
defaults and keys are the reference server's; docs/reliability.md ("Limits") says what happens
past each limit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("aion.limits")

KIB = 1024
MIB = 1024 * 1024


@dataclass
class Limits:
    """Per-execution limits (dynamic config); 0 turns a pending, signal or update count limit
    off."""

    blob_size_warn: int = 512 * KIB
    blob_size_error: int = 2 * MIB
    memo_size_warn: int = 2 * KIB
    memo_size_error: int = 2 * MIB
    history_size_warn: int = 10 * MIB
    history_size_error: int = 50 * MIB
    history_count_warn: int = 10 * KIB
    history_count_error: int = 50 * KIB
    suggest_continue_as_new_bytes: int = 4 * MIB
    suggest_continue_as_new_count: int = 4 * KIB
    pending_activities: int = 2000
    pending_child_executions: int = 2000
    pending_signals: int = 2000
    pending_cancel_requests: int = 2000
    signals_per_execution: int = 10000
    search_attribute_keys: int = 100
    search_attribute_value_size: int = 2 * KIB
    search_attributes_total_size: int = 40 * KIB
    in_flight_updates: int = 10
    in_flight_update_payloads: int = 20 * MIB
    total_updates: int = 2000
    total_updates_suggest_continue_as_new: float = 0.9

    def blob_too_large(self, size: int, what: str) -> bool:
        """Is a payload of `size` bytes past the blob size error limit? Past the warn limit,
        log it (as the reference, the error limit applies only past the warn limit too)."""
        return _too_large(size, self.blob_size_warn, self.blob_size_error, what)

    def memo_too_large(self, size: int, what: str) -> bool:
        """`blob_too_large` for a memo, against the memo size limits."""
        return _too_large(size, self.memo_size_warn, self.memo_size_error, what)

    def updates_suggest_continue_as_new(self, updates: int) -> bool:
        """Do `updates` (in flight and completed) reach the share of the total updates limit at
        which workflow tasks suggest continue-as-new?"""
        threshold = math.ceil(self.total_updates * self.total_updates_suggest_continue_as_new)
        return threshold > 0 and updates >= threshold


def _too_large(size: int, warn: int, error: int, what: str) -> bool:
    if size <= warn:
        return False
    log.warning("%s: blob data size %d exceeds the warning limit %d", what, size, warn)
    return size > error


# The reference's dynamic config key of each limit.
KEYS: dict[str, str] = {
    "limit.blobSize.warn": "blob_size_warn",
    "limit.blobSize.error": "blob_size_error",
    "limit.memoSize.warn": "memo_size_warn",
    "limit.memoSize.error": "memo_size_error",
    "limit.historySize.warn": "history_size_warn",
    "limit.historySize.error": "history_size_error",
    "limit.historyCount.warn": "history_count_warn",
    "limit.historyCount.error": "history_count_error",
    "limit.historySize.suggestContinueAsNew": "suggest_continue_as_new_bytes",
    "limit.historyCount.suggestContinueAsNew": "suggest_continue_as_new_count",
    "limit.numPendingActivities.error": "pending_activities",
    "limit.numPendingChildExecutions.error": "pending_child_executions",
    "limit.numPendingSignals.error": "pending_signals",
    "limit.numPendingCancelRequests.error": "pending_cancel_requests",
    "history.maximumSignalsPerExecution": "signals_per_execution",
    "frontend.searchAttributesNumberOfKeysLimit": "search_attribute_keys",
    "frontend.searchAttributesSizeOfValueLimit": "search_attribute_value_size",
    "frontend.searchAttributesTotalSizeLimit": "search_attributes_total_size",
    "history.maxInFlightUpdates": "in_flight_updates",
    "history.maxInFlightUpdatePayloads": "in_flight_update_payloads",
    "history.maxTotalUpdates": "total_updates",
    "history.maxTotalUpdates.suggestContinueAsNewThreshold": "total_updates_suggest_continue_as_new",
}
_TYPES: dict[str, type] = {name: type(getattr(Limits(), name)) for name in KEYS.values()}


def value_type(key: str) -> type:
    """The JSON type the value of limit `key` must have (int or float)."""
    return _TYPES[KEYS[key]]


def apply(limits: Limits, dynamic_config: dict[str, Any]) -> None:
    """Set the limits `dynamic_config` names (checked by aion.config); ignore other keys."""
    for key, value in dynamic_config.items():
        name = KEYS.get(key)
        if name is not None:
            setattr(limits, name, _TYPES[name](value))
