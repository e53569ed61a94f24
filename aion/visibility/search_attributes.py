"""Search attributes: Temporal's system and predefined ones, and each namespace's custom ones.

Custom search attributes are registered per namespace (OperatorService.AddSearchAttributes, the
dev server's `--search-attribute NAME=TYPE`) and persisted. Behaviour follows the reference
Temporal server (1.32) with SQL visibility, as bundled in the Temporal CLI dev server:

* Each custom attribute occupies one of a fixed set of storage fields per type (Keyword01 ..
  Keyword10, Int01 .. Int03, ...): at most 10 Keyword and 3 of every other type per namespace.
  Adding a name that exists is a no-op whatever its type; removing an unknown name is a no-op.
* Written search attributes (start, signal-with-start, upsert) are checked as Temporal's
  frontend checks them: every name must be a registered custom attribute or a predefined one a
  user may set, and every value must decode as the attribute's type (JSON; a one-element list
  stands for its element, an empty list or null for "unset").
* Read paths (describe, list) drop values of attributes that are no longer registered, and add
  the `type` metadata a payload lacks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb

from aion.common.limits import Limits
from aion.common.search_attribute_values import SearchAttributeError, decode_value, query_value
from aion.persistence import SearchAttributeRecord, Store
from aion.visibility.query import (
    BOOL,
    DATETIME,
    DOUBLE,
    INT,
    KEYWORD,
    KEYWORD_LIST,
    PREDEFINED_SEARCH_ATTRIBUTES,
    TEXT,
    TYPE_NAMES,
)

SYSTEM_SEARCH_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "WorkflowId", "RunId", "WorkflowType", "StartTime", "ExecutionTime", "CloseTime",
        "ExecutionStatus", "TaskQueue", "HistoryLength", "ExecutionDuration",
        "StateTransitionCount", "HistorySizeBytes", "ParentWorkflowId", "ParentRunId",
        "RootWorkflowId", "RootRunId",
    }
)  # fmt: skip
"""Attributes the server derives from the execution itself; never written by users."""

USER_SETTABLE_PREDEFINED: frozenset[str] = frozenset(
    {
        "TemporalChangeVersion", "BinaryChecksums", "BuildIds", "BatcherNamespace",
        "BatcherUser", "TemporalScheduledStartTime", "TemporalScheduledById",
        "TemporalSchedulePaused", "TemporalNamespaceDivision", "TemporalPauseInfo",
        "TemporalReportedProblems",
    }
)  # fmt: skip
"""Predefined (non-system) attributes users may still write (Temporal's white list)."""

RESERVED_NAMES: frozenset[str] = frozenset(
    {"NamespaceId", "MemoEncoding", "Memo", "VisibilityTaskKey"}
)
RESERVED_PREFIX = "Temporal"

FIELDS_PER_TYPE: dict[int, int] = {
    BOOL: 3,
    INT: 3,
    DOUBLE: 3,
    DATETIME: 3,
    KEYWORD: 10,
    KEYWORD_LIST: 3,
    TEXT: 3,
}
"""Storage fields per type, as Temporal's SQL visibility pre-allocates them."""

PREALLOCATED_FIELDS: dict[str, int] = {
    f"{TYPE_NAMES[t]}{i:02d}": t
    for t, count in FIELDS_PER_TYPE.items()
    for i in range(1, count + 1)
}
"""Field name (Keyword01, Int02, ...) to type."""

TYPE_BY_NAME: dict[str, int] = {name.lower(): t for t, name in TYPE_NAMES.items() if t}
"""Type by its short name, lower-cased (`keyword`, `keywordlist`, ...)."""


def is_reserved(name: str) -> bool:
    """A name no custom search attribute may take."""
    return (
        name in PREDEFINED_SEARCH_ATTRIBUTES
        or name in RESERVED_NAMES
        or name.startswith(RESERVED_PREFIX)
    )


def parse_type(name: str) -> int | None:
    """An IndexedValueType from its short name, case-insensitively (`Keyword`, `int`, ...)."""
    return TYPE_BY_NAME.get(name.lower())


class TooManySearchAttributesError(ValueError):
    """No free storage field of the requested type."""


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class CustomSearchAttribute:
    name: str
    type: int
    field: str


class SearchAttributeRegistry:
    """Every namespace's custom search attributes, in memory and written through to the store."""

    def __init__(self, store: Store, limits: Limits | None = None) -> None:
        self.store = store
        # The number of keys and sizes writes may have (the server's limits, from dynamic config).
        self.limits = limits if limits is not None else Limits()
        self._custom: dict[str, dict[str, CustomSearchAttribute]] = {}
        self._writes = 0  # changes made through this registry
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """(Re)read every namespace's custom attributes; readers never see a partial map, and
        a read that overlapped a change made here is dropped (it may predate the change)."""
        writes = self._writes
        custom: dict[str, dict[str, CustomSearchAttribute]] = {}
        for r in await self.store.list_search_attributes():
            custom.setdefault(r.namespace_id, {})[r.name] = CustomSearchAttribute(
                r.name, r.type, r.field
            )
        if writes == self._writes:
            self._custom = custom

    # ---- reading ------------------------------------------------------------------------
    def custom(self, namespace_id: str) -> dict[str, int]:
        """Custom attribute name to type."""
        return {a.name: a.type for a in self._custom.get(namespace_id, {}).values()}

    def types(self, namespace_id: str) -> dict[str, int]:
        """Every attribute a list filter may name (predefined and custom) to its type."""
        return {**self.custom(namespace_id), **PREDEFINED_SEARCH_ATTRIBUTES}

    def aliases(self, namespace_id: str) -> dict[str, str]:
        """Storage field to custom attribute name (DescribeNamespace's aliases)."""
        return {a.field: a.name for a in self._custom.get(namespace_id, {}).values()}

    def type_of(self, namespace_id: str, name: str) -> int | None:
        if name in PREDEFINED_SEARCH_ATTRIBUTES:
            return PREDEFINED_SEARCH_ATTRIBUTES[name]
        attr = self._custom.get(namespace_id, {}).get(name)
        return attr.type if attr else None

    # ---- changing -----------------------------------------------------------------------
    async def add(self, namespace_id: str, attributes: Mapping[str, int]) -> None:
        """Register names not registered yet (existing names are left alone, whatever their
        type); all or nothing. Raises TooManySearchAttributesError."""
        async with self._lock:
            current = self._custom.get(namespace_id, {})
            used = {a.field for a in current.values()}
            new: list[SearchAttributeRecord] = []
            for name, sa_type in attributes.items():
                if name in current or any(r.name == name for r in new):
                    continue
                free = [f for f, t in PREALLOCATED_FIELDS.items() if t == sa_type and f not in used]
                if not free:
                    count = sum(1 for t in PREALLOCATED_FIELDS.values() if t == sa_type)
                    raise TooManySearchAttributesError(
                        f"cannot have more than {count} search attribute of type "
                        f"{TYPE_NAMES.get(sa_type, str(sa_type))}"
                    )
                used.add(free[0])
                new.append(SearchAttributeRecord(namespace_id, name, sa_type, free[0]))
            if new:
                await self._write(namespace_id, new, [])

    async def remove(self, namespace_id: str, names: Iterable[str]) -> None:
        """Unregister custom names; unknown names are skipped. Raises SearchAttributeError for a
        system, predefined or storage-field name (nothing is removed then)."""
        async with self._lock:
            current = self._custom.get(namespace_id, {})
            drop: list[str] = []
            for name in names:
                if name in current:
                    drop.append(name)
                elif name in PREDEFINED_SEARCH_ATTRIBUTES or name in PREALLOCATED_FIELDS:
                    raise SearchAttributeError(
                        f"Unable to remove non-custom search attributes: {name}."
                    )
            if drop:
                await self._write(namespace_id, [], drop)

    async def upsert_aliases(self, namespace_id: str, field_to_alias: Mapping[str, str]) -> None:
        """UpdateNamespace's `custom_search_attribute_aliases`: an empty alias frees its field,
        an existing alias is left alone, a taken field is an error."""
        async with self._lock:
            current = self._custom.get(namespace_id, {})
            by_field = {a.field: a for a in current.values()}
            new: list[SearchAttributeRecord] = []
            drop: list[str] = []
            for field_name, alias in field_to_alias.items():
                if not alias:
                    if field_name in by_field:
                        drop.append(by_field[field_name].name)
                elif alias in current:
                    continue
                elif field_name in by_field:
                    raise SearchAttributeError(
                        "Custom search attribute field name already allocated."
                    )
                elif field_name in PREALLOCATED_FIELDS:
                    sa_type = PREALLOCATED_FIELDS[field_name]
                    new.append(SearchAttributeRecord(namespace_id, alias, sa_type, field_name))
            if new or drop:
                await self._write(namespace_id, new, drop)

    async def _write(
        self, namespace_id: str, upserts: list[SearchAttributeRecord], deletions: list[str]
    ) -> None:
        self._writes += 1
        await self.store.update_search_attributes(namespace_id, upserts, deletions)
        self._writes += 1
        current = dict(self._custom.get(namespace_id, {}))
        for name in deletions:
            current.pop(name, None)
        for r in upserts:
            current[r.name] = CustomSearchAttribute(r.name, r.type, r.field)
        self._custom[namespace_id] = current

    # ---- validating writes --------------------------------------------------------------
    def validate(
        self,
        namespace_id: str,
        namespace: str,
        attributes: common_pb.SearchAttributes,
        sizes: bool = True,
    ) -> None:
        """Check search attributes a request or command writes, as Temporal does (their sizes
        too unless `sizes` is False); raises SearchAttributeError with Temporal's message."""
        fields = attributes.indexed_fields
        if not fields:
            return
        custom = self._custom.get(namespace_id, {})
        for name in fields:
            if name not in PREDEFINED_SEARCH_ATTRIBUTES and name not in custom:
                raise SearchAttributeError(
                    f"Namespace {namespace} has no mapping defined for search attribute {name}"
                )
        max_keys = self.limits.search_attribute_keys
        if len(fields) > max_keys:
            raise SearchAttributeError(
                f"number of search attributes {len(fields)} exceeds limit {max_keys}"
            )
        for name, payload in fields.items():
            if name in SYSTEM_SEARCH_ATTRIBUTES or (
                name in PREDEFINED_SEARCH_ATTRIBUTES and name not in USER_SETTABLE_PREDEFINED
            ):
                raise SearchAttributeError(f"{name} attribute can't be set in SearchAttributes")
            sa_type = self.type_of(namespace_id, name)
            assert sa_type is not None
            try:
                decode_value(payload, sa_type)
            except SearchAttributeError as e:
                raise SearchAttributeError(
                    f"invalid value for search attribute {name} of type "
                    f"{TYPE_NAMES.get(sa_type, sa_type)}: {e}"
                ) from None
        if sizes:
            self.validate_size(attributes)

    def validate_size(self, attributes: common_pb.SearchAttributes) -> None:
        """Each value and the whole map within the size limits, else SearchAttributeError."""
        max_value = self.limits.search_attribute_value_size
        for name, payload in attributes.indexed_fields.items():
            if len(payload.data) > max_value:
                raise SearchAttributeError(
                    f"search attribute {name} value size {len(payload.data)} exceeds size "
                    f"limit {max_value}"
                )
        total = attributes.ByteSize()
        max_total = self.limits.search_attributes_total_size
        if total > max_total:
            raise SearchAttributeError(
                f"total size of search attributes {total} exceeds size limit {max_total}"
            )

    # ---- reading values -----------------------------------------------------------------
    def present(
        self, namespace_id: str, attributes: common_pb.SearchAttributes
    ) -> common_pb.SearchAttributes:
        """Search attributes as describe and list answer them: only attributes still
        registered, with values of their type, each payload carrying its `type` metadata."""
        shown = common_pb.SearchAttributes()
        for name, payload in attributes.indexed_fields.items():
            sa_type = self.type_of(namespace_id, name)
            if sa_type is None:
                continue
            try:
                if decode_value(payload, sa_type) is None:
                    continue
            except SearchAttributeError:
                continue
            out = shown.indexed_fields[name]
            out.CopyFrom(payload)
            if "type" not in out.metadata:
                out.metadata["type"] = TYPE_NAMES[sa_type].encode()
        return shown

    def query_values(
        self, namespace_id: str, attributes: common_pb.SearchAttributes
    ) -> dict[str, Any]:
        """Attribute values as the list-filter engine sees them (registered attributes only)."""
        values: dict[str, Any] = {}
        for name, payload in attributes.indexed_fields.items():
            sa_type = self.type_of(namespace_id, name)
            if sa_type is None or name in SYSTEM_SEARCH_ATTRIBUTES:
                continue
            value = query_value(payload, sa_type)
            if value is not None:
                values[name] = value
        return values


def keyword_payload(value: str | list[str]) -> common_pb.Payload:
    """A Keyword (or KeywordList) value as the server writes one, type metadata included."""
    return common_pb.Payload(
        metadata={
            "encoding": b"json/plain",
            "type": b"Keyword" if isinstance(value, str) else b"KeywordList",
        },
        data=json.dumps(value).encode(),
    )


def system_and_preallocated() -> dict[str, int]:
    """What the deprecated GetSearchAttributes answers: every system and predefined attribute
    and every storage field (Temporal lists its SQL columns, not the namespaces' names)."""
    return {**PREDEFINED_SEARCH_ATTRIBUTES, **PREALLOCATED_FIELDS}
