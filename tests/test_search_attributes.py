"""Custom search attributes through the official SDK: OperatorService add / list / remove, typed
values on start, describe and list filters, validation of starts and upserts, and the dev
server's `--search-attribute` / `--dynamic-config-value` flags. Messages are the reference's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType, IndexedValueType, WorkflowTaskFailedCause
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    RemoveSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetSearchAttributesRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from aion.visibility.search_attributes import SearchAttributeError, decode_value
from tests.helpers import Storage, unique
from tests.servers import ROOT

pytestmark = pytest.mark.timeout(60)

T = IndexedValueType
KW = SearchAttributeKey.for_keyword("CustomKeywordField")
INT = SearchAttributeKey.for_int("CustomIntField")
DT = SearchAttributeKey.for_datetime("CustomDatetimeField")
KL = SearchAttributeKey.for_keyword_list("CustomKeywordListField")
DBL = SearchAttributeKey.for_float("CustomDoubleField")
BOOL = SearchAttributeKey.for_bool("CustomBoolField")
TXT = SearchAttributeKey.for_text("CustomTextField")
CUSTOM = {
    KW.name: T.INDEXED_VALUE_TYPE_KEYWORD,
    INT.name: T.INDEXED_VALUE_TYPE_INT,
    DT.name: T.INDEXED_VALUE_TYPE_DATETIME,
    KL.name: T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    DBL.name: T.INDEXED_VALUE_TYPE_DOUBLE,
    BOOL.name: T.INDEXED_VALUE_TYPE_BOOL,
    TXT.name: T.INDEXED_VALUE_TYPE_TEXT,
}


async def new_namespace(client: Client) -> Client:
    """A fresh namespace (its own custom attribute slots) and a client bound to it."""
    name = unique("sa")
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    return await Client.connect(client.service_client.config.target_host, namespace=name)


async def add(client: Client, attributes: dict[str, Any], namespace: str | None = None) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace if namespace is None else namespace,
            search_attributes=attributes,
        )
    )


async def remove(client: Client, names: list[str], namespace: str | None = None) -> None:
    await client.operator_service.remove_search_attributes(
        RemoveSearchAttributesRequest(
            namespace=client.namespace if namespace is None else namespace, search_attributes=names
        )
    )


async def custom(client: Client) -> dict[str, int]:
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return dict(listed.custom_attributes)


async def rejected(call: Any) -> RPCError:
    with pytest.raises(RPCError) as info:
        await call
    return info.value


@pytest.fixture(scope="module")
async def ns_client(client: Client) -> AsyncIterator[Client]:
    """A namespace of this module's own, with the typed attributes registered."""
    ns = await new_namespace(client)
    await add(ns, CUSTOM)
    yield ns


# ---- OperatorService --------------------------------------------------------------------------


async def test_add_list_remove(client: Client) -> None:
    ns = await new_namespace(client)
    listed = await ns.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=ns.namespace)
    )
    assert dict(listed.custom_attributes) == {}
    assert listed.system_attributes["WorkflowId"] == T.INDEXED_VALUE_TYPE_KEYWORD
    assert listed.system_attributes["BuildIds"] == T.INDEXED_VALUE_TYPE_KEYWORD_LIST
    assert len(listed.system_attributes) == 33
    assert not listed.storage_schema

    await add(ns, {"OrderId": T.INDEXED_VALUE_TYPE_KEYWORD, "Amount": T.INDEXED_VALUE_TYPE_INT})
    assert await custom(ns) == {
        "OrderId": T.INDEXED_VALUE_TYPE_KEYWORD,
        "Amount": T.INDEXED_VALUE_TYPE_INT,
    }
    # Adding an existing name is a no-op, whatever the type (as in Temporal).
    await add(ns, {"OrderId": T.INDEXED_VALUE_TYPE_KEYWORD})
    await add(ns, {"OrderId": T.INDEXED_VALUE_TYPE_BOOL})
    assert (await custom(ns))["OrderId"] == T.INDEXED_VALUE_TYPE_KEYWORD
    # Other namespaces do not see them.
    assert "OrderId" not in await custom(client)

    # DescribeNamespace shows the storage field each one occupies, as Temporal's SQL visibility.
    described = await ns.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=ns.namespace)
    )
    assert dict(described.config.custom_search_attribute_aliases) == {
        "Keyword01": "OrderId",
        "Int01": "Amount",
    }

    await remove(ns, ["Amount", "NeverRegistered"])  # unknown names are skipped
    assert await custom(ns) == {"OrderId": T.INDEXED_VALUE_TYPE_KEYWORD}
    await remove(ns, ["Amount"])


async def test_operator_errors(client: Client) -> None:
    ns = await new_namespace(client)
    op = ns.operator_service
    cases: list[tuple[Any, RPCStatusCode, str]] = [
        (
            add(ns, {}),
            RPCStatusCode.INVALID_ARGUMENT,
            "SearchAttributes are not set on request.",
        ),
        (
            add(ns, {"WorkflowId": T.INDEXED_VALUE_TYPE_KEYWORD}),
            RPCStatusCode.INVALID_ARGUMENT,
            "Search attribute WorkflowId is reserved by system.",
        ),
        (
            add(ns, {"TemporalAnything": T.INDEXED_VALUE_TYPE_KEYWORD}),
            RPCStatusCode.INVALID_ARGUMENT,
            "Search attribute TemporalAnything is reserved by system.",
        ),
        (
            add(ns, {"Weird": 99}),
            RPCStatusCode.INVALID_ARGUMENT,
            "Unknown search attribute type: 99.",
        ),
        (
            add(ns, {"Untyped": T.INDEXED_VALUE_TYPE_UNSPECIFIED}),
            RPCStatusCode.INVALID_ARGUMENT,
            "Unable to create search attributes: cannot have more than 0 search attribute of "
            "type Unspecified.",
        ),
        (
            add(ns, {"X": T.INDEXED_VALUE_TYPE_INT}, namespace=""),
            RPCStatusCode.INVALID_ARGUMENT,
            "Namespace is not set on request.",
        ),
        (
            add(ns, {"X": T.INDEXED_VALUE_TYPE_INT}, namespace="no-such-namespace"),
            RPCStatusCode.NOT_FOUND,
            "Namespace no-such-namespace is not found.",
        ),
        (
            remove(ns, []),
            RPCStatusCode.INVALID_ARGUMENT,
            "SearchAttributes are not set on request.",
        ),
        (
            remove(ns, ["WorkflowId"]),
            RPCStatusCode.INVALID_ARGUMENT,
            "Unable to remove non-custom search attributes: WorkflowId.",
        ),
        (
            op.list_search_attributes(ListSearchAttributesRequest()),
            RPCStatusCode.INVALID_ARGUMENT,
            "Namespace is not set on request.",
        ),
    ]
    for call, status, message in cases:
        error = await rejected(call)
        assert (error.status, error.message) == (status, message)

    # Three Int attributes per namespace (the fields Temporal's SQL visibility pre-allocates);
    # a request that does not fit changes nothing.
    await add(ns, {"I1": T.INDEXED_VALUE_TYPE_INT, "I2": T.INDEXED_VALUE_TYPE_INT})
    error = await rejected(
        add(ns, {"I3": T.INDEXED_VALUE_TYPE_INT, "I4": T.INDEXED_VALUE_TYPE_INT})
    )
    assert error.message == (
        "Unable to create search attributes: cannot have more than 3 search attribute of type Int."
    )
    assert set(await custom(ns)) == {"I1", "I2"}
    await add(ns, {"I3": T.INDEXED_VALUE_TYPE_INT})


async def test_deprecated_get_search_attributes(client: Client) -> None:
    keys = (await client.workflow_service.get_search_attributes(GetSearchAttributesRequest())).keys
    assert keys["WorkflowId"] == T.INDEXED_VALUE_TYPE_KEYWORD
    assert keys["Keyword10"] == T.INDEXED_VALUE_TYPE_KEYWORD
    assert keys["KeywordList03"] == T.INDEXED_VALUE_TYPE_KEYWORD_LIST


# ---- typed values: start, describe, list ------------------------------------------------------


async def test_typed_attributes_round_trip(ns_client: Client) -> None:
    tq = unique("tq")
    first = datetime(2024, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)
    second = datetime(2024, 6, 1, tzinfo=UTC)
    values = {
        "a": TypedSearchAttributes(
            [
                SearchAttributePair(KW, "alpha"),
                SearchAttributePair(INT, 1),
                SearchAttributePair(DT, first),
                SearchAttributePair(KL, ["red", "green"]),
                SearchAttributePair(DBL, 1.5),
                SearchAttributePair(BOOL, True),
                SearchAttributePair(TXT, "the quick brown fox"),
            ]
        ),
        "b": TypedSearchAttributes(
            [
                SearchAttributePair(KW, "beta"),
                SearchAttributePair(INT, 5),
                SearchAttributePair(DT, second),
                SearchAttributePair(KL, ["blue"]),
                SearchAttributePair(DBL, 2.5),
                SearchAttributePair(BOOL, False),
                SearchAttributePair(TXT, "a lazy dog"),
            ]
        ),
        "c": TypedSearchAttributes([SearchAttributePair(KW, "gamma")]),
    }
    handles: dict[str, WorkflowHandle[Any, Any]] = {}
    for key, attributes in values.items():
        handles[key] = await ns_client.start_workflow(
            "Idle", id=unique(key), task_queue=tq, search_attributes=attributes
        )
    ids = {handle.id: key for key, handle in handles.items()}

    described = await handles["a"].describe()
    assert described.typed_search_attributes == values["a"]
    assert described.typed_search_attributes[DT] == first
    assert (await handles["c"].describe()).typed_search_attributes == values["c"]

    async def matching(condition: str) -> list[str]:
        query = f"TaskQueue = '{tq}' AND ({condition})"
        listed = [w async for w in ns_client.list_workflows(query)]
        count = (await ns_client.count_workflows(query)).count
        assert count == len(listed)
        return sorted(ids[w.id] for w in listed)

    listed = {ids[w.id]: w async for w in ns_client.list_workflows(f"TaskQueue = '{tq}'")}
    assert listed["a"].typed_search_attributes == values["a"]
    assert listed["b"].typed_search_attributes == values["b"]

    expectations = {
        # Keyword
        "CustomKeywordField = 'alpha'": ["a"],
        "CustomKeywordField != 'alpha'": ["b", "c"],
        "CustomKeywordField IN ('alpha', 'gamma')": ["a", "c"],
        "CustomKeywordField NOT IN ('alpha', 'gamma')": ["b"],
        "CustomKeywordField STARTS_WITH 'be'": ["b"],
        "CustomKeywordField > 'alpha'": ["b", "c"],
        # Int
        "CustomIntField = 5": ["b"],
        "CustomIntField > 1": ["b"],
        "CustomIntField >= 1": ["a", "b"],
        "CustomIntField < 5": ["a"],
        "CustomIntField <= 5": ["a", "b"],
        "CustomIntField BETWEEN 2 AND 5": ["b"],
        "CustomIntField NOT BETWEEN 2 AND 5": ["a"],
        "CustomIntField IN (1, 7)": ["a"],
        "CustomIntField IS NULL": ["c"],
        "CustomIntField IS NOT NULL": ["a", "b"],
        # Datetime
        "CustomDatetimeField > '2024-03-01T00:00:00Z'": ["b"],
        "CustomDatetimeField = '2024-01-01T12:30:15.123456Z'": ["a"],
        "CustomDatetimeField BETWEEN '2023-12-31T00:00:00Z' AND '2024-01-02T00:00:00+02:00'": ["a"],
        # KeywordList
        "CustomKeywordListField = 'red'": ["a"],
        "CustomKeywordListField IN ('blue', 'green')": ["a", "b"],
        "CustomKeywordListField NOT IN ('blue')": ["a", "c"],
        # Double, Bool, Text
        "CustomDoubleField >= 2": ["b"],
        "CustomDoubleField < 2.5": ["a"],
        "CustomBoolField = true": ["a"],
        "CustomBoolField = false": ["b"],
        "CustomTextField = 'fox'": ["a"],
        "CustomTextField = 'LAZY'": ["b"],
        "CustomTextField != 'fox'": ["b", "c"],
        # Combined
        "CustomKeywordField = 'alpha' OR CustomIntField = 5": ["a", "b"],
        "CustomBoolField = true AND CustomKeywordListField = 'green'": ["a"],
    }
    for condition, expected in expectations.items():
        assert await matching(condition) == expected, condition

    for condition, fragment in {
        "CustomIntField = 'x'": "CustomIntField",
        "CustomBoolField = 1": "CustomBoolField",
        "CustomTextField > 'a'": "operator '>' not supported for Text type",
        "NotRegistered = 'x'": "invalid query: invalid search attribute: NotRegistered",
    }.items():
        error = await rejected(ns_client.count_workflows(condition))
        assert error.status == RPCStatusCode.INVALID_ARGUMENT
        assert fragment in error.message

    for handle in handles.values():
        await handle.terminate()


async def test_removed_attribute_is_hidden(client: Client) -> None:
    ns = await new_namespace(client)
    await add(ns, {"Short": T.INDEXED_VALUE_TYPE_KEYWORD, "Kept": T.INDEXED_VALUE_TYPE_INT})
    short = SearchAttributeKey.for_keyword("Short")
    kept = SearchAttributeKey.for_int("Kept")
    tq = unique("tq")
    handle = await ns.start_workflow(
        "Idle",
        id=unique("removed"),
        task_queue=tq,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(short, "x"), SearchAttributePair(kept, 3)]
        ),
    )
    await remove(ns, ["Short"])
    assert (await handle.describe()).typed_search_attributes == TypedSearchAttributes(
        [SearchAttributePair(kept, 3)]
    )
    (listed,) = [w async for w in ns.list_workflows(f"TaskQueue = '{tq}'")]
    assert listed.typed_search_attributes == TypedSearchAttributes([SearchAttributePair(kept, 3)])
    error = await rejected(ns.count_workflows("Short = 'x'"))
    assert error.message == "invalid query: invalid search attribute: Short"
    # Registered again with another type, the old value does not show as the new type.
    await add(ns, {"Short": T.INDEXED_VALUE_TYPE_INT})
    assert (await ns.count_workflows(f"TaskQueue = '{tq}' AND Short IS NULL")).count == 1
    await handle.terminate()


# ---- validation of written attributes ---------------------------------------------------------


async def test_start_rejects_bad_search_attributes(ns_client: Client) -> None:
    tq = unique("tq")
    cases = [
        (
            SearchAttributePair(SearchAttributeKey.for_keyword("NotRegistered"), "x"),
            f"Namespace {ns_client.namespace} has no mapping defined for search attribute "
            "NotRegistered",
        ),
        (
            SearchAttributePair(SearchAttributeKey.for_int("CustomKeywordField"), 5),
            "invalid value for search attribute CustomKeywordField of type Keyword: 5",
        ),
        (
            SearchAttributePair(SearchAttributeKey.for_keyword("CustomIntField"), "many"),
            "invalid value for search attribute CustomIntField of type Int: many",
        ),
        (
            SearchAttributePair(SearchAttributeKey.for_float("CustomIntField"), 1.5),
            "invalid value for search attribute CustomIntField of type Int: 1.5",
        ),
        (
            SearchAttributePair(SearchAttributeKey.for_keyword("CustomDatetimeField"), "yesterday"),
            "invalid value for search attribute CustomDatetimeField of type Datetime: yesterday",
        ),
        (
            SearchAttributePair(SearchAttributeKey.for_keyword("WorkflowId"), "mine"),
            "WorkflowId attribute can't be set in SearchAttributes",
        ),
        (
            SearchAttributePair(SearchAttributeKey.for_keyword("TemporalWorkerDeployment"), "d"),
            "TemporalWorkerDeployment attribute can't be set in SearchAttributes",
        ),
        (
            SearchAttributePair(KW, "x" * 3000),
            "search attribute CustomKeywordField value size 3002 exceeds size limit 2048",
        ),
    ]
    for pair, message in cases:
        error = await rejected(
            ns_client.start_workflow(
                "Idle",
                id=unique("bad"),
                task_queue=tq,
                search_attributes=TypedSearchAttributes([pair]),
            )
        )
        assert (error.status, error.message) == (RPCStatusCode.INVALID_ARGUMENT, message)

    error = await rejected(
        ns_client.start_workflow(
            "Idle",
            id=unique("bad"),
            task_queue=tq,
            start_signal="go",
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SearchAttributeKey.for_keyword("NotRegistered"), "x")]
            ),
        )
    )
    assert "has no mapping defined for search attribute NotRegistered" in error.message

    # Predefined attributes users may set are accepted.
    handle = await ns_client.start_workflow(
        "Idle",
        id=unique("ok"),
        task_queue=tq,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(
                    SearchAttributeKey.for_keyword_list("TemporalChangeVersion"), ["v1"]
                )
            ]
        ),
    )
    await handle.terminate()


@workflow.defn(sandboxed=False)
class UpsertWorkflow:
    @workflow.run
    async def run(self, registered: bool) -> str:
        if registered:
            workflow.upsert_search_attributes([KW.value_set("upserted"), INT.value_set(42)])
        else:
            workflow.upsert_search_attributes(
                [SearchAttributeKey.for_keyword("NotRegistered").value_set("x")]
            )
        return "done"


async def test_upsert_of_registered_attributes(ns_client: Client) -> None:
    tq = unique("tq")
    async with Worker(ns_client, task_queue=tq, workflows=[UpsertWorkflow]):
        handle = await ns_client.start_workflow(
            UpsertWorkflow.run, True, id=unique("upsert"), task_queue=tq
        )
        assert await handle.result() == "done"
    described = await handle.describe()
    assert described.typed_search_attributes[KW] == "upserted"
    assert described.typed_search_attributes[INT] == 42
    query = f"TaskQueue = '{tq}' AND CustomKeywordField = 'upserted' AND CustomIntField = 42"
    assert [w.id async for w in ns_client.list_workflows(query)] == [handle.id]


async def test_upsert_of_unregistered_attribute_fails_workflow_task(ns_client: Client) -> None:
    tq = unique("tq")
    async with Worker(ns_client, task_queue=tq, workflows=[UpsertWorkflow]):
        handle = await ns_client.start_workflow(
            UpsertWorkflow.run, False, id=unique("upsert-bad"), task_queue=tq
        )
        failed = None
        async for event in handle.fetch_history_events(wait_new_event=True):
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failed = event.workflow_task_failed_event_attributes
                break
        await handle.terminate()
    assert failed is not None
    assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES
    assert failed.failure.message == (
        f"BadSearchAttributes: Namespace {ns_client.namespace} has no mapping defined for "
        "search attribute NotRegistered"
    )
    assert "NotRegistered" not in (await handle.describe()).typed_search_attributes


@pytest.mark.parametrize(
    ("data", "sa_type", "expected"),
    [
        (b"5", T.INDEXED_VALUE_TYPE_INT, 5),
        (b"[5]", T.INDEXED_VALUE_TYPE_INT, 5),
        (b"[]", T.INDEXED_VALUE_TYPE_INT, None),
        (b"null", T.INDEXED_VALUE_TYPE_INT, None),
        (b"3", T.INDEXED_VALUE_TYPE_DOUBLE, 3),
        (b'["a", "b"]', T.INDEXED_VALUE_TYPE_KEYWORD_LIST, ["a", "b"]),
        (b'"2024-01-02T03:04:05Z"', T.INDEXED_VALUE_TYPE_DATETIME, "2024-01-02T03:04:05Z"),
    ],
)
def test_value_decoding(data: bytes, sa_type: int, expected: Any) -> None:
    payload = Payload(metadata={"encoding": b"json/plain"}, data=data)
    assert decode_value(payload, sa_type) == expected


@pytest.mark.parametrize(
    ("data", "sa_type", "shown"),
    [  # what the reference prints for each rejected value
        (b"1.5", T.INDEXED_VALUE_TYPE_INT, "1.5"),
        (b"1234567.0", T.INDEXED_VALUE_TYPE_INT, "1.234567e+06"),
        (b"0.00001", T.INDEXED_VALUE_TYPE_INT, "1e-05"),
        (b"12345678901234567890", T.INDEXED_VALUE_TYPE_INT, "1.2345678901234567e+19"),
        (b"[5, 6]", T.INDEXED_VALUE_TYPE_INT, "[5 6]"),
        (
            b'{"b": 1, "a": [1, "x", null, true]}',
            T.INDEXED_VALUE_TYPE_INT,
            "map[a:[1 x <nil> true] b:1]",
        ),
        (b'"true"', T.INDEXED_VALUE_TYPE_BOOL, "true"),
        (b"3", T.INDEXED_VALUE_TYPE_TEXT, "3"),
        (b'"a"', T.INDEXED_VALUE_TYPE_KEYWORD_LIST, "a"),
        (b'["a", 1]', T.INDEXED_VALUE_TYPE_KEYWORD_LIST, "[a 1]"),
        (b"12345", T.INDEXED_VALUE_TYPE_DATETIME, "12345"),
        (
            b"1e400",
            T.INDEXED_VALUE_TYPE_INT,
            'value from <metadata:{key:"encoding"  value:"json/plain"}  data:"1e400">',
        ),
    ],
)
def test_rejected_value_messages(data: bytes, sa_type: int, shown: str) -> None:
    with pytest.raises(SearchAttributeError) as info:
        decode_value(Payload(metadata={"encoding": b"json/plain"}, data=data), sa_type)
    assert str(info.value) == shown


# ---- dev server flags -------------------------------------------------------------------------


async def test_search_attribute_and_dynamic_config_flags(storage: Storage) -> None:
    server = storage.server(
        namespaces=["second"],
        extra_args=[
            "--search-attribute", "FlagKeyword=keyword",
            "--search-attribute", "FlagInt=Int",
            "--search-attribute", "FlagList=KEYWORDLIST",
            "--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true",
            "--dynamic-config-value", "limit.blobSize.error=2097152",
            "--headless", "--ui-port", "0", "--http-port", "0", "--metrics-port", "0",
        ],
    )  # fmt: skip
    expected = {
        "FlagKeyword": T.INDEXED_VALUE_TYPE_KEYWORD,
        "FlagInt": T.INDEXED_VALUE_TYPE_INT,
        "FlagList": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    }
    server.start()
    try:
        default = await Client.connect(server.address)
        second = await Client.connect(server.address, namespace="second")
        assert await custom(default) == expected
        assert await custom(second) == expected
        await add(default, {"AddedLater": T.INDEXED_VALUE_TYPE_BOOL})
    finally:
        server.stop()
    # Registered attributes are persisted; starting again with the flags adds nothing twice.
    server.start()
    try:
        default = await Client.connect(server.address)
        assert await custom(default) == {**expected, "AddedLater": T.INDEXED_VALUE_TYPE_BOOL}
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dynamic-config-value", "frontend.someKey"],
            "invalid dynamic config values: missing expected '=' in \"frontend.someKey\"",
        ),
        (
            ["--dynamic-config-value", "frontend.someKey=notjson"],
            'invalid dynamic config values: invalid JSON value for key "frontend.someKey"',
        ),
        (
            ["--dynamic-config-value", 'aion.scheduleRetention="a week"'],
            'invalid dynamic config values: aion.scheduleRetention: time: invalid duration "a week"',
        ),
        (
            ["--search-attribute", "NoType"],
            "invalid search attributes: missing expected '=' in \"NoType\"",
        ),
        (["--search-attribute", "X=Strange"], 'invalid search attribute value type "Strange"'),
        (["--search-attribute", "X=Unspecified"], "invalid search attribute value type"),
        (["--search-attribute", "WorkflowId=Keyword"], "WorkflowId is reserved"),
    ],
)
def test_malformed_flags_are_rejected(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aion", "server", "start-dev", "--port", "1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr
