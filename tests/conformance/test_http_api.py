"""Temporal's HTTP API: the same calls against the reference dev server (`--http-port`) and
Aion give the same JSON, ids and times normalized (acceptance 1 of the HTTP API issue), and bad
input gets a 4xx with a message (acceptance 5)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from tests.conformance.reference import ReferenceServer
from tests.servers import AionProcess

pytestmark = pytest.mark.conformance


@workflow.defn(name="HttpWorkflow")
class HttpWorkflow:
    """Waits for a `finish` signal; answers a query and an update."""

    def __init__(self) -> None:
        self.signals: list[Any] = []
        self.done = False

    @workflow.run
    async def run(self, greeting: dict[str, Any]) -> dict[str, Any]:
        await workflow.wait_condition(lambda: self.done)
        return {"greeting": greeting, "signals": self.signals}

    @workflow.signal
    def poke(self, value: Any) -> None:
        self.signals.append(value)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.query
    def seen(self) -> list[Any]:
        return self.signals

    @workflow.update
    def add(self, value: int) -> int:
        self.signals.append(value)
        return len(self.signals)


@dataclass
class Target:
    name: str
    grpc_address: str
    http_url: str


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


Call = tuple[str, int, Any]  # (label, HTTP status, JSON answer)


async def _call(
    http: aiohttp.ClientSession,
    target: Target,
    method: str,
    path: str,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    async with http.request(
        method, target.http_url + path, data=data, headers=headers or {}
    ) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except json.JSONDecodeError:
            return response.status, text


async def _scenario(http: aiohttp.ClientSession, target: Target, suffix: str) -> list[Call]:
    """The calls, in order, each answer kept for comparison."""
    calls: list[Call] = []
    wid = f"http-wf-{suffix}"
    queue = f"http-q-{suffix}"
    ns = "/api/v1/namespaces/default"

    async def call(label: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, answer = await _call(http, target, method, path, body, **kw)
        calls.append((label, status, answer))
        return answer

    await call("describe namespace", "GET", ns)
    await call("namespace not found", "GET", "/api/v1/namespaces/nope/workflows/x")
    start = {
        "workflowType": {"name": "HttpWorkflow"},
        "taskQueue": {"name": queue},
        "input": [{"hello": "world", "n": 1}],
        "requestId": f"req-{suffix}",
    }
    await call("start", "POST", f"{ns}/workflows/{wid}", start)
    await call(
        "start again (conflict)", "POST", f"{ns}/workflows/{wid}", {**start, "requestId": "other"}
    )
    client = await Client.connect(target.grpc_address)
    async with Worker(client, task_queue=queue, workflows=[HttpWorkflow]):
        # Each step waits for the workflow task the last one caused, so that both servers see
        # the same interleaving and write the same events.
        await _no_workflow_task(http, target, f"{ns}/workflows/{wid}")
        await call("signal", "POST", f"{ns}/workflows/{wid}/signal/poke", {"input": ["one"]})
        await _no_workflow_task(http, target, f"{ns}/workflows/{wid}")
        await call(
            "query",
            "POST",
            f"{ns}/workflows/{wid}/query/seen",
            {"query": {"queryType": "seen"}},
        )
        await call(
            "update",
            "POST",
            f"{ns}/workflows/{wid}/update/add",
            {
                "request": {"meta": {"updateId": "u1"}, "input": {"args": [2]}},
                "waitPolicy": {
                    "lifecycleStage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"
                },
            },
        )
        await call("signal finish", "POST", f"{ns}/workflows/{wid}/signal/finish", {})
        await call(
            "history (long poll for the close event)",
            "GET",
            f"{ns}/workflows/{wid}/history?waitNewEvent=true"
            "&historyEventFilterType=HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT",
        )
    await call("describe", "GET", f"{ns}/workflows/{wid}")
    await call("history", "GET", f"{ns}/workflows/{wid}/history")
    await call("history reverse", "GET", f"{ns}/workflows/{wid}/history-reverse")
    # In pages: the reference pages by batches (the events one transition wrote), whole; 3
    # splits batches, 11 (the history's batch count) is one page with no next one.
    for size in (3, 11):
        token = ""
        while True:
            reverse = f"{ns}/workflows/{wid}/history-reverse?maximumPageSize={size}"
            reverse += f"&nextPageToken={quote(token)}" if token else ""
            answer = await call(f"history reverse by {size}", "GET", reverse)
            token = answer.get("nextPageToken", "")
            if not token:
                break
    await call(
        "history without shorthand", "GET", f"{ns}/workflows/{wid}/history?noPayloadShorthand"
    )
    query = f"WorkflowId='{wid}'"
    await _wait_listed(http, target, query)
    await call("list", "GET", f"{ns}/workflows?query={query}")
    await call("count", "GET", f"{ns}/workflow-count?query={query}")
    await call(
        "count grouped",
        "GET",
        f"{ns}/workflow-count?query=WorkflowId='{wid}' GROUP BY ExecutionStatus",
    )
    await call("list with a bad query", "GET", f"{ns}/workflows?query=bad query")
    other = f"http-term-{suffix}"
    # Enums by a short name, as the Web UI sends some.
    another = {**start, "requestId": "x2", "workflowIdReusePolicy": "allowDuplicate"}
    await call("start another", "POST", f"{ns}/workflows/{other}", another)
    await call("terminate", "POST", f"{ns}/workflows/{other}/terminate", {"reason": "stop"})
    await call("terminate again", "POST", f"{ns}/workflows/{other}/terminate", {"reason": "x"})
    await call("workflow not found", "GET", f"{ns}/workflows/nope-{suffix}")
    schedule = {
        "schedule": {
            "spec": {"interval": [{"interval": "3600s"}]},
            "action": {
                "startWorkflow": {
                    "workflowId": f"sched-wf-{suffix}",
                    "workflowType": {"name": "HttpWorkflow"},
                    "taskQueue": {"name": queue},
                    "input": [{"from": "schedule"}],
                }
            },
            "state": {"paused": True, "notes": "made over HTTP"},
        },
        "requestId": f"sched-{suffix}",
    }
    await call("create schedule", "POST", f"{ns}/schedules/sched-{suffix}", schedule)
    await call("describe schedule", "GET", f"{ns}/schedules/sched-{suffix}")
    trigger = {"patch": {"triggerImmediately": {"overlapPolicy": "Unspecified"}}}
    await call("trigger schedule", "POST", f"{ns}/schedules/sched-{suffix}/patch", trigger)
    await call("delete schedule", "DELETE", f"{ns}/schedules/sched-{suffix}")
    await call("search attributes", "GET", f"{ns}/search-attributes")
    await call("no such route", "GET", "/api/v1/nothing/here")
    await call("method not allowed", "PUT", ns)
    return calls


async def _no_workflow_task(http: aiohttp.ClientSession, target: Target, path: str) -> None:
    """Wait until the workflow has no workflow task scheduled or running."""
    async with asyncio.timeout(30):
        while True:
            status, answer = await _call(http, target, "GET", path)
            if status == 200 and "pendingWorkflowTask" not in answer:
                return
            await asyncio.sleep(0.05)  # polling the workflow's state for a condition


async def _wait_listed(http: aiohttp.ClientSession, target: Target, query: str) -> None:
    """Visibility is eventually consistent on the reference: wait for the closed run."""
    path = f"/api/v1/namespaces/default/workflows?query={query} AND ExecutionStatus='Completed'"
    async with asyncio.timeout(30):
        while True:
            status, answer = await _call(http, target, "GET", path)
            if status == 200 and answer.get("executions"):
                return
            await asyncio.sleep(0.2)  # polling the reference's visibility, not synchronisation


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STICKY = re.compile(r"^\d+@.*-[0-9a-f]{32}$")  # a worker's sticky queue
_DURATION = re.compile(r"^\d+\.\d+s$")  # measured, not configured (executionDuration)
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# Fields whose values differ between any two servers (or runs) by nature.
_VOLATILE = {
    "taskId",
    "identity",
    "eventTime",
    "requestId",
    "historySizeBytes",
    "nextPageToken",
    "firstWorkflowTaskBackoff",
    "stateTransitionCount",
    "workerVersionStamp",
    "sdkMetadata",
    "meteringMetadata",
    "workflowTaskCompletedEventAttributes",
    "workflowTaskStartedEventAttributes",
    "suggestContinueAsNew",
    "buildIdRedirectCounter",
    "id",
    "futureActionTimes",
    "recentActions",
    "capabilities",  # what each server version offers
    "mostRecentWorkerVersionStamp",
    "BuildIds",
}


def _normalize(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _normalize(v) for k, v in sorted(value.items()) if k not in _VOLATILE}
        if out.get("indexedFields") == {}:  # only volatile attributes in it
            del out["indexedFields"]
        return out
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, str):
        if _TIME.match(value) or _DURATION.match(value):
            return "<time>"
        if _STICKY.match(value):
            return "<sticky queue>"
        return _UUID.sub("<uuid>", value)
    return value


Scenario = Callable[[aiohttp.ClientSession, Target, str], Awaitable[list[Call]]]


async def _compare(
    scenario: Scenario,
    reference_server: ReferenceServer,
    aion_server: AionProcess,
    http: aiohttp.ClientSession,
) -> None:
    """Run `scenario` on the reference, then on Aion: the same statuses and normalized answers."""
    suffix = uuid.uuid4().hex[:8]
    reference = Target("reference", reference_server.address, reference_server.http_url)
    aion = Target("aion", aion_server.address, aion_server.http_url)
    expected = await scenario(http, reference, suffix)
    got = await scenario(http, aion, suffix)
    for (label, ref_status, ref_answer), (_, status, answer) in zip(expected, got, strict=True):
        assert status == ref_status, f"{label}: HTTP {status} {answer}, the reference {ref_status}"
        assert _normalize(answer) == _normalize(ref_answer), label


async def test_http_api_answers_as_the_reference(
    reference_server: ReferenceServer, aion_server: AionProcess, http: aiohttp.ClientSession
) -> None:
    await _compare(_scenario, reference_server, aion_server, http)


async def _nexus_scenario(http: aiohttp.ClientSession, target: Target, suffix: str) -> list[Call]:
    """The Nexus endpoint registry's calls, in order: create, get, update (and a stale update),
    list (by name, in pages), delete, and the errors of each."""
    calls: list[Call] = []
    base = "/api/v1/nexus/endpoints"

    async def call(label: str, method: str, path: str, body: Any = None) -> Any:
        status, answer = await _call(http, target, method, path, body)
        calls.append((label, status, answer))
        return answer

    description = {"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "ImhlbGxvIg=="}
    worker = {
        "name": f"ep-worker-{suffix}",
        "description": description,
        "target": {"worker": {"namespace": "default", "taskQueue": f"nexus-{suffix}"}},
    }
    external = {
        "name": f"ep-external-{suffix}",
        "target": {"external": {"url": "https://nexus.example.com/handler"}},
    }
    created = (await call("create", "POST", base, {"spec": worker}))["endpoint"]
    await call("create external", "POST", base, {"spec": external})
    await call("create, name taken", "POST", base, {"spec": worker})
    bad_spec = {"name": "1-bad-", "target": {"worker": {"namespace": "default"}}}
    await call("create, bad name and no queue", "POST", base, {"spec": bad_spec})
    await call("create, no target", "POST", base, {"spec": {"name": f"ep-x-{suffix}"}})
    reserved = {"worker": {"namespace": "default", "taskQueue": "/_sys/q"}}
    await call("create, reserved queue", "POST", base, {"spec": {**worker, "target": reserved}})
    ftp = {"external": {"url": "ftp://nexus.example.com"}}
    await call("create, bad scheme", "POST", base, {"spec": {**external, "target": ftp}})
    nowhere = {"worker": {"namespace": f"nope-{suffix}", "taskQueue": "q"}}
    await call("create, no such namespace", "POST", base, {"spec": {**worker, "target": nowhere}})
    big = {**worker, "description": {"data": "eA==" * 7000}}
    await call("create, description too large", "POST", base, {"spec": big})
    path = f"{base}/{created['id']}"
    await call("get", "GET", path)
    await call("get, malformed id", "GET", f"{base}/not-a-uuid")
    await call("get, unknown id", "GET", f"{base}/{uuid.UUID(int=1)}")
    renamed = {**worker, "name": f"ep-renamed-{suffix}"}
    await call("update", "POST", f"{path}/update", {"version": "1", "spec": renamed})
    await call("update, stale version", "POST", f"{path}/update", {"version": "1", "spec": worker})
    unknown = f"{base}/{uuid.UUID(int=2)}/update"
    await call("update, unknown id", "POST", unknown, {"version": "1", "spec": worker})
    await call("list by name", "GET", f"{base}?name=ep-renamed-{suffix}")
    await call("list by unknown name", "GET", f"{base}?name=ep-none-{suffix}")
    await call("list, negative page size", "GET", f"{base}?pageSize=-1")
    await call("list, page size too large", "GET", f"{base}?pageSize=1001")
    # Pages of one: one endpoint per page (ids are random: their order is not compared), then
    # an empty last page, as a full page always has a next one.
    listed, token = [], ""
    while True:
        query = f"?pageSize=1&nextPageToken={quote(token)}" if token else "?pageSize=1"
        status, page = await _call(http, target, "GET", base + query)
        token = page.get("nextPageToken", "")
        calls.append(("list a page", status, [len(page.get("endpoints", [])), bool(token)]))
        listed += page.get("endpoints", [])
        if not token:
            break
    calls.append(("the pages' endpoints", 200, sorted(listed, key=lambda e: e["spec"]["name"])))
    ids = [endpoint["id"] for endpoint in listed]
    for endpoint_id in ids:
        await call("delete, no version", "DELETE", f"{base}/{endpoint_id}")
        await call("delete", "DELETE", f"{base}/{endpoint_id}?version=1")
    await call("delete again", "DELETE", f"{path}?version=2")
    await call("get deleted", "GET", path)
    await call("list, none left", "GET", base)
    return calls


async def test_nexus_endpoints_answer_as_the_reference(
    reference_server: ReferenceServer, aion_server: AionProcess, http: aiohttp.ClientSession
) -> None:
    """Run on a registry without endpoints (the scenario deletes the ones it made)."""
    await _compare(_nexus_scenario, reference_server, aion_server, http)


_START = {"workflowType": {"name": "X"}, "taskQueue": {"name": "q"}}
# (label, method, path, raw body): requests both servers refuse.
_BAD_REQUESTS = [
    ("malformed JSON", "POST", "/workflows/bad-1", b"{bad"),
    ("not an object", "POST", "/workflows/bad-2", b"[1, 2]"),
    ("unknown field", "POST", "/workflows/bad-3", json.dumps({**_START, "bogus": 1}).encode()),
    ("wrong type", "POST", "/workflows/bad-4", json.dumps({"workflowType": 5}).encode()),
    (
        "bad duration",
        "POST",
        "/workflows/bad-5",
        json.dumps({**_START, "workflowRunTimeout": "abc"}).encode(),
    ),
    (
        "bad enum",
        "POST",
        "/workflows/bad-6",
        json.dumps({**_START, "workflowIdReusePolicy": "NOPE"}).encode(),
    ),
    (
        "oversized body",
        "POST",
        "/workflows/bad-7",
        json.dumps({**_START, "input": ["x" * (5 * 1024 * 1024)]}).encode(),
    ),
    ("bad integer in the query", "GET", "/workflows?pageSize=abc", None),
    ("bad enum in the query", "GET", "/workflows/x/history?historyEventFilterType=BOGUS", None),
]


@pytest.mark.parametrize(("label", "method", "path", "raw"), _BAD_REQUESTS)
async def test_bad_http_requests_get_a_4xx_with_a_message(
    reference_server: ReferenceServer,
    aion_server: AionProcess,
    http: aiohttp.ClientSession,
    label: str,
    method: str,
    path: str,
    raw: bytes | None,
) -> None:
    reference = Target("reference", reference_server.address, reference_server.http_url)
    aion = Target("aion", aion_server.address, aion_server.http_url)
    full = "/api/v1/namespaces/default" + path
    ref_status, ref_answer = await _call(http, reference, method, full, raw=raw)
    status, answer = await _call(http, aion, method, full, raw=raw)
    assert 400 <= ref_status < 500, (label, ref_status, ref_answer)
    assert status == ref_status, (label, status, answer)
    assert answer["code"] == ref_answer["code"] and answer["message"], (label, answer)
