"""Temporal's Web UI served by Aion, driven in real headless Chromium (Debian's `chromium`, by
Playwright for Python; a browser download is not needed): seeded workflows in the list with their
status counts, a run's history and timeline, terminate and signal from the UI, the schedules page
listing, pausing, creating, editing and triggering a schedule, an imported history, and every
route of the app visited with seeded data. Screenshots of each page go to test-artifacts/ui/.

The UI's build (scripts/build-ui) is made here when missing; the tests skip only when it is
missing and node/npm are not there to make it."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    Locator,
    Page,
    Request,
    Response,
    async_playwright,
    expect,
)
from temporalio import activity, workflow
from temporalio.api.batch.v1 import message_pb2 as batch_pb
from temporalio.api.enums.v1.batch_operation_pb2 import BatchOperationState
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb
from temporalio.api.operatorservice.v1 import request_response_pb2 as operator_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsr
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.converter import DataConverter
from temporalio.worker import Worker, WorkerDeploymentConfig

from aion.ui import built
from tests.helpers import fresh_storage, unique
from tests.servers import ROOT, AionProcess, CodecServerProcess, free_port

with workflow.unsafe.imports_passed_through():  # the workflows' sandbox must not reload these
    from aion.codec import EncryptionCodec, KeyRing

with workflow.unsafe.imports_passed_through():  # cryptography's binding loads once only
    from tests.auth_support import aion_cli, created_key

CHROMIUM = Path("/usr/bin/chromium")
# How long a page may take to show what a test waits for (a deadline, not a speed target: the
# machine may be busy with other servers).
expect.set_options(timeout=20_000)
ARTIFACTS = Path(ROOT, "test-artifacts", "ui")
NAMESPACE = "ui"
KEY = base64.b64encode(bytes(range(32))).decode()
SECRET = "Ada Lovelace, account 4242"


def _ensure_built() -> None:
    if built():
        return
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("the Web UI is not built and cannot be: node and npm are missing")
    subprocess.run([str(Path(ROOT, "scripts", "build-ui"))], check=True, cwd=ROOT)


@activity.defn(name="ui_greet")
async def greet(name: str) -> str:
    return f"Hello, {name}"


@workflow.defn(name="UiWorkflow")
class UiWorkflow:
    """Greets through an activity, then waits for `finish`; `poke` signals are kept."""

    def __init__(self) -> None:
        self.pokes: list[str] = []
        self.done = False

    @workflow.run
    async def run(self, name: str) -> str:
        greeting = await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.wait_condition(lambda: self.done)
        return greeting

    @workflow.signal
    def poke(self, value: str) -> None:
        self.pokes.append(value)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.update
    def shout(self, value: str) -> str:
        self.pokes.append(value)
        return value.upper()


@pytest.fixture(scope="module")
async def ui_server(backend: str) -> AsyncIterator[AionProcess]:
    """An Aion dev server with its Web UI on a free port, on `backend`."""
    await asyncio.to_thread(_ensure_built)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    async with fresh_storage(backend) as storage:
        server = storage.server(namespaces=[NAMESPACE], ui=True)
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)


@pytest.fixture(scope="module")
async def ui_client(ui_server: AionProcess) -> Client:
    return await Client.connect(ui_server.address, namespace=NAMESPACE)


@pytest.fixture(scope="module")
async def browser(ui_server: AionProcess) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A fresh browser page; its screenshot is kept as the test's artifact."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = await context.new_page()
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        await context.close()


def _url(server: AionProcess, path: str) -> str:
    return f"{server.ui_url}/namespaces/{NAMESPACE}{path}"


async def test_workflows_list_with_status_counts(
    ui_server: AionProcess, ui_client: Client, page: Page
) -> None:
    queue = unique("ui-list")
    prefix = unique("listed")
    for i in range(3):
        await ui_client.start_workflow("Nobody", id=f"{prefix}-run-{i}", task_queue=queue)
    for i in range(2):
        handle = await ui_client.start_workflow("Nobody", id=f"{prefix}-end-{i}", task_queue=queue)
        await handle.terminate("seeded")
    query = f'WorkflowId STARTS_WITH "{prefix}"'
    await page.goto(_url(ui_server, f"/workflows?query={query}"))
    await expect(page.get_by_role("heading", name="5 Workflows")).to_be_visible()
    await expect(page.get_by_text("3 Running")).to_be_visible()
    await expect(page.get_by_text("2 Terminated")).to_be_visible()
    for i in range(3):
        await expect(page.get_by_role("link", name=f"{prefix}-run-{i}")).to_be_visible()


@pytest.fixture(scope="module")
async def worker(ui_client: Client) -> AsyncIterator[str]:
    """A worker for UiWorkflow; yields its task queue."""
    queue = unique("ui-worker")
    async with Worker(ui_client, task_queue=queue, workflows=[UiWorkflow], activities=[greet]):
        yield queue


async def test_history_and_timeline_render(
    ui_server: AionProcess, ui_client: Client, worker: str, page: Page
) -> None:
    handle = await ui_client.start_workflow(
        UiWorkflow.run, "timeline", id=unique("detail"), task_queue=worker
    )
    await page.goto(_url(ui_server, f"/workflows/{handle.id}"))
    await expect(page.get_by_test_id("workflow-id-heading").first).to_contain_text(handle.id)
    # The history's events (the activity's among them) and the timeline's rows.
    events = page.get_by_test_id("event-summary-row")
    await expect(events.filter(has_text="Activity Task Completed")).to_have_count(1)
    await expect(events.filter(has_text="Workflow Execution Started")).to_have_count(1)
    await expect(page.get_by_text("ui_greet").first).to_be_visible()
    await expect(page.locator("svg").filter(has_text="ui_greet").first).to_be_visible()


async def test_terminate_from_the_ui(
    ui_server: AionProcess, ui_client: Client, worker: str, page: Page
) -> None:
    handle = await ui_client.start_workflow(
        UiWorkflow.run, "terminate", id=unique("terminated"), task_queue=worker
    )
    await page.goto(_url(ui_server, f"/workflows/{handle.id}"))
    await page.locator("#workflow-actions-menu-button:visible").click()
    await page.get_by_role("menuitem", name="Terminate").filter(visible=True).click()
    modal = page.get_by_test_id("terminate-confirmation-modal").filter(visible=True)
    await modal.get_by_role("textbox").fill("from the UI")
    await modal.get_by_test_id("confirm-modal-button").click()
    await expect(page.get_by_text("Terminated").first).to_be_visible()
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.TERMINATED
    history = await handle.fetch_history()
    terminated = history.events[-1].workflow_execution_terminated_event_attributes
    assert terminated.reason.startswith("from the UI")  # the UI adds where it came from


async def test_signal_from_the_ui(
    ui_server: AionProcess, ui_client: Client, worker: str, page: Page
) -> None:
    handle = await ui_client.start_workflow(
        UiWorkflow.run, "signal", id=unique("signalled"), task_queue=worker
    )
    await page.goto(_url(ui_server, f"/workflows/{handle.id}"))
    await expect(
        page.get_by_test_id("event-summary-row").filter(has_text="Activity Task Completed")
    ).to_have_count(1)
    await page.locator("#workflow-actions-menu-button:visible").click()
    await page.get_by_role("menuitem", name="Send a Signal").filter(visible=True).click()
    modal = page.get_by_test_id("signal-confirmation-modal").filter(visible=True)
    # The signals to choose from come from the workflow's metadata query, answered by the worker.
    await modal.get_by_test_id("signal-select-button").click()
    await modal.get_by_role("option").filter(has_text="finish").click()
    await modal.get_by_test_id("confirm-modal-button").click()
    # The signal ends the workflow: the page shows it completed with its result.
    await expect(page.get_by_text("Completed").first).to_be_visible()
    assert await handle.result() == "Hello, signal"


async def _start_and_open(
    ui_server: AionProcess, ui_client: Client, worker: str, page: Page, name: str
) -> WorkflowHandle[Any, Any]:
    """Start UiWorkflow(`name`) and open its page, once its activity completed."""
    handle = await ui_client.start_workflow(
        UiWorkflow.run, name, id=unique(name), task_queue=worker
    )
    await page.goto(_url(ui_server, f"/workflows/{handle.id}"))
    await expect(
        page.get_by_test_id("event-summary-row").filter(has_text="Activity Task Completed")
    ).to_have_count(1)
    return handle


async def _until_status(handle: WorkflowHandle[Any, Any], status: WorkflowExecutionStatus) -> None:
    async with asyncio.timeout(30):
        while (await handle.describe()).status != status:
            await asyncio.sleep(0.05)  # polling the run's status for the action's effect


async def _type_payload(scope: Locator, text: str) -> None:
    """Type into the payload editor (CodeMirror) inside `scope`."""
    editor = scope.locator(".cm-content").first
    await editor.click()
    await editor.press("Control+A")
    await editor.press_sequentially(text)


async def test_cancel_from_the_ui(
    ui_server: AionProcess, ui_client: Client, worker: str, page: Page
) -> None:
    handle = await _start_and_open(ui_server, ui_client, worker, page, "cancel")
    await page.locator("#workflow-actions-primary-button:visible").click()
    modal = page.get_by_test_id("cancel-confirmation-modal").filter(visible=True)
    await modal.get_by_test_id("confirm-modal-button").click()
    # The request is accepted; the workflow then acts on it in its next task.
    await _until_status(handle, WorkflowExecutionStatus.CANCELED)
    await page.reload()
    await expect(page.get_by_text("Canceled", exact=True).first).to_be_visible()


async def test_reset_from_the_ui(
    ui_server: AionProcess, ui_client: Client, worker: str, page: Page
) -> None:
    handle = await _start_and_open(ui_server, ui_client, worker, page, "reset")
    first_run = handle.result_run_id
    await page.locator("#workflow-actions-menu-button:visible").click()
    await page.get_by_test_id("reset-button").filter(visible=True).click()
    modal = page.get_by_test_id("reset-confirmation-modal").filter(visible=True)
    await modal.get_by_test_id("workflow-reset-event-id-select-button").click()
    await modal.get_by_role("option").filter(has_text="WorkflowTaskCompleted").first.click()
    await modal.locator("#reset-reason").fill("reset from the UI")
    await modal.get_by_test_id("confirm-modal-button").click()
    # The first run is terminated by the reset; a new run goes on from the chosen event.
    first = ui_client.get_workflow_handle(handle.id, run_id=first_run)
    await _until_status(first, WorkflowExecutionStatus.TERMINATED)
    current = ui_client.get_workflow_handle(handle.id)
    new_run = (await current.describe()).run_id
    assert new_run != first_run
    terminated = (await first.fetch_history()).events[-1]
    assert terminated.workflow_execution_terminated_event_attributes.reason.startswith(
        "reset from the UI"
    )
    await current.signal(UiWorkflow.finish)
    assert await current.result() == "Hello, reset"


async def test_update_from_the_ui(
    ui_server: AionProcess, ui_client: Client, worker: str, page: Page
) -> None:
    handle = await _start_and_open(ui_server, ui_client, worker, page, "update")
    await page.locator("#workflow-actions-menu-button:visible").click()
    await page.get_by_test_id("update-button").filter(visible=True).click()
    modal = page.get_by_test_id("update-confirmation-modal").filter(visible=True)
    # The updates to choose from come from the workflow's metadata query, as the signals do.
    await modal.get_by_test_id("update-select-button").click()
    await modal.get_by_role("option").filter(has_text="shout").click()
    await _type_payload(modal, '"hey"')
    await modal.get_by_test_id("confirm-modal-button").click()
    await expect(modal).to_be_hidden()  # closed on the update's success
    events = (await handle.fetch_history()).events
    completed = [
        e for e in events if e.HasField("workflow_execution_update_completed_event_attributes")
    ]
    assert len(completed) == 1
    outcome = completed[0].workflow_execution_update_completed_event_attributes.outcome
    assert outcome.success.payloads[0].data == b'"HEY"'


async def test_start_workflow_from_the_ui(
    ui_server: AionProcess, ui_client: Client, worker: str, page: Page
) -> None:
    workflow_id = unique("started")
    await page.goto(_url(ui_server, "/workflows/start-workflow"))
    await page.locator("#workflowId").fill(workflow_id)
    await page.locator("#taskQueue").fill(worker)
    await page.locator("#workflowType").fill("UiWorkflow")
    await _type_payload(page, '"from the UI"')
    await page.get_by_test_id("start-workflow-button").click()
    await expect(page.get_by_text("Workflow started", exact=False).first).to_be_visible()
    handle = ui_client.get_workflow_handle(workflow_id)
    await handle.signal(UiWorkflow.finish)
    assert await handle.result() == "Hello, from the UI"


async def test_schedules_page_lists_and_pauses_a_schedule(
    ui_server: AionProcess, ui_client: Client, page: Page
) -> None:
    schedule_id = unique("ui-schedule")
    action = ScheduleActionStartWorkflow(
        "UiWorkflow", "scheduled", id=unique("scheduled"), task_queue=unique("ui-nobody")
    )
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))])
    handle = await ui_client.create_schedule(schedule_id, Schedule(action=action, spec=spec))
    await page.goto(_url(ui_server, "/schedules"))
    link = page.get_by_role("link", name=schedule_id)
    await expect(link).to_be_visible()
    await link.click()
    await expect(page.get_by_test_id("schedule-name").first).to_contain_text(schedule_id)
    await page.locator("#schedule-actions-primary-button").click()
    modal = page.locator("#pause-schedule-modal")
    await modal.locator("#pause-reason").fill("paused from the UI")
    await modal.get_by_role("button", name="Pause").click()
    await expect(page.locator("#schedule-actions-primary-button")).to_have_text("Unpause")
    state = (await handle.describe()).schedule.state
    assert state.paused
    assert state.note == "paused from the UI"


async def test_nexus_pages_list_and_create_endpoints(
    ui_server: AionProcess, ui_client: Client, page: Page
) -> None:
    operator = ui_client.operator_service
    seeded = unique("seeded")
    worker_target = nexus_pb.EndpointTarget.Worker(namespace=NAMESPACE, task_queue="nexus-q")
    spec = nexus_pb.EndpointSpec(name=seeded, target=nexus_pb.EndpointTarget(worker=worker_target))
    await operator.create_nexus_endpoint(operator_pb.CreateNexusEndpointRequest(spec=spec))
    await page.goto(f"{ui_server.ui_url}/nexus")
    await expect(page.get_by_role("button").filter(has_text=seeded)).to_be_visible()

    created = unique("made-in-the-ui")
    # The list page's button is tested by its presence; the form is opened by its address, as
    # a click on a page still hydrating can be lost.
    await expect(page.get_by_text("Create Nexus Endpoint")).to_be_visible()
    await page.goto(f"{ui_server.ui_url}/nexus/create")
    await page.locator("#name").fill(created)
    await page.locator("#target-namespace").click()  # opens the list of namespaces
    await page.locator("#target-namespace").press_sequentially(NAMESPACE)
    await page.get_by_role("option", name=NAMESPACE, exact=True).click()
    await page.locator("#task-queue").fill("ui-nexus-queue")
    await page.get_by_role("button", name="Create Nexus Endpoint").click()
    await expect(page.get_by_role("button").filter(has_text=created)).to_be_visible()
    listed = await operator.list_nexus_endpoints(
        operator_pb.ListNexusEndpointsRequest(name=created)
    )
    [endpoint] = listed.endpoints
    assert endpoint.spec.target.worker == nexus_pb.EndpointTarget.Worker(
        namespace=NAMESPACE, task_queue="ui-nexus-queue"
    )


async def test_settings_history_download_csrf_and_caching(
    ui_server: AionProcess, ui_client: Client
) -> None:
    handle = await ui_client.start_workflow("Nobody", "x", id=unique("raw"), task_queue="nobody")
    run = handle.result_run_id
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{ui_server.ui_url}/api/v1/settings") as r:
            settings = await r.json()
            token = r.cookies["_csrf"].value
        major, minor, _ = (int(part) for part in settings["Version"].split("."))
        assert (major, minor) >= (2, 23)
        assert settings["Codec"]["Endpoint"] == ""
        assert settings["DefaultNamespace"] == "default"
        assert settings["Auth"]["Enabled"] is False

        path = f"/api/v1/namespaces/{NAMESPACE}/workflows/{handle.id}/run/{run}/history.json"
        async with http.get(ui_server.ui_url + path) as r:
            assert r.status == 200
            assert "attachment" in r.headers["Content-Disposition"]
            history = await r.json()
        types = [event["eventType"] for event in history["events"]]
        assert types == [
            "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        ]

        # Payloads in full, as Temporal's UI server answers (the app decodes them itself).
        events = f"/api/v1/namespaces/{NAMESPACE}/workflows/{handle.id}/history"
        async with http.get(ui_server.ui_url + events) as r:
            assert r.headers["Content-Type"].startswith("application/json")
            started = (await r.json())["history"]["events"][0]
        payload = started["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
        assert payload["metadata"]["encoding"] == "anNvbi9wbGFpbg=="  # json/plain

        # Writes carry the cookie's token in X-CSRF-TOKEN, as the app sends them.
        signal = f"{ui_server.ui_url}/api/v1/namespaces/{NAMESPACE}/workflows/{handle.id}/signal/go"
        async with http.post(signal, json={}) as r:
            assert (r.status, await r.json()) == (
                400,
                {"message": "missing csrf token in request header"},
            )
        async with http.post(signal, json={}, headers={"X-CSRF-TOKEN": "forged"}) as r:
            assert (r.status, await r.json()) == (403, {"message": "invalid csrf token"})
        async with http.post(signal, json={}, headers={"X-CSRF-TOKEN": token}) as r:
            assert r.status == 200, await r.text()

        # An RPC Aion lacks (Nexus operations are not run) is UNIMPLEMENTED, as on gRPC.
        unimplemented = f"{ui_server.ui_url}/api/v1/namespaces/{NAMESPACE}/nexus-operations/x"
        async with http.get(unimplemented) as r:
            assert (r.status, (await r.json())["code"]) == (501, 12)

        # Any app path is the app's page; the content-hashed files are cached for good.
        async with http.get(f"{ui_server.ui_url}/namespaces/{NAMESPACE}/schedules") as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-cache"
            page = await r.text()
        script = page.split('import("', 1)[1].split('"', 1)[0]
        assert script.startswith("/_app/immutable/")
        async with http.get(ui_server.ui_url + script) as r:
            assert r.status == 200
            assert "immutable" in r.headers["Cache-Control"]
    history_events = await handle.fetch_history()
    assert (
        history_events.events[-1].workflow_execution_signaled_event_attributes.signal_name == "go"
    )


async def test_public_path_and_input_decoded_through_the_codec_server(
    backend: str, browser: Browser, tmp_path: Path
) -> None:
    """With --ui-public-path the app and its API live under the path; with --ui-codec-endpoint
    the app decodes payloads through `aion codec-server` (called cross-origin, with CORS): a
    workflow started by a client encrypting with `aion.codec` shows its input in clear."""
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"current": "k1", "keys": {"k1": KEY}}))
    ui_port = free_port()
    codec = CodecServerProcess(str(keys), cors_origins=[f"http://127.0.0.1:{ui_port}"])
    await asyncio.to_thread(codec.start)
    flags = ["--ui-port", str(ui_port), "--ui-public-path", "/temporal/"]
    flags += ["--ui-codec-endpoint", codec.url]
    try:
        async with fresh_storage(backend) as storage:
            server = storage.server(ui=True, extra_args=flags)
            await asyncio.to_thread(server.start)
            try:
                shot = f"test_public_path_and_input_decoded_through_the_codec_server[{backend}]"
                await _check_decoded_input(
                    server, codec.url, KeyRing.from_file(keys), browser, shot
                )
            finally:
                await asyncio.to_thread(server.stop)
    finally:
        codec.stop()


async def _check_decoded_input(
    server: AionProcess, codec_url: str, keys: KeyRing, browser: Browser, shot: str
) -> None:
    assert server.ui_url.endswith("/temporal")
    async with aiohttp.ClientSession() as http, http.get(f"{server.ui_url}/api/v1/settings") as r:
        codec = (await r.json())["Codec"]
    assert codec == {
        "Endpoint": codec_url,
        "PassAccessToken": False,
        "IncludeCredentials": False,
        "DefaultErrorMessage": "",
        "DefaultErrorLink": "",
    }
    converter = dataclasses.replace(DataConverter.default, payload_codec=EncryptionCodec(keys))
    client = await Client.connect(server.address, data_converter=converter)
    handle = await client.start_workflow("Nobody", SECRET, id=unique("secret"), task_queue="nobody")
    stored = (await handle.fetch_history()).events[0]
    raw = stored.workflow_execution_started_event_attributes.input.payloads[0]
    assert raw.metadata["encoding"] == b"binary/encrypted"

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    try:
        await page.goto(server.ui_url)
        await expect(page).to_have_url(f"{server.ui_url}/namespaces/default/workflows")
        await page.goto(f"{server.ui_url}/namespaces/default/workflows/{handle.id}")
        await expect(page.get_by_text(SECRET).first).to_be_visible()
        content = await page.content()
        assert "binary/encrypted" not in content
        assert base64.b64encode(raw.data).decode()[:24] not in content
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
        await context.close()


async def test_the_ui_with_auth_on(backend: str, browser: Browser, tmp_path: Path) -> None:
    """With auth on, the UI calls the API with the key it is given (--ui-api-key; a system
    reader's: the app lists the namespaces and reads the cluster's info): the pages work, the
    key never reaches the browser, and the API itself still refuses callers without
    credentials."""
    await asyncio.to_thread(_ensure_built)
    async with fresh_storage(backend, str(tmp_path / "aion.db")) as storage:
        database = (
            ["--dsn", storage.dsn] if storage.dsn else ["--db-filename", str(storage.db_filename)]
        )
        key, writer = [
            created_key(await asyncio.to_thread(aion_cli, "apikey", "create", *role, *database))
            for role in (
                ["-n", "temporal-system", "--role", "reader"],
                ["-n", "default", "--role", "writer"],
            )
        ]
        server = storage.server(ui=True, extra_args=["--auth", "--ui-api-key", key])
        await asyncio.to_thread(server.start)
        try:
            client = await Client.connect(server.address, api_key=writer, tls=False)
            workflow_id = unique("behind-auth")
            await client.start_workflow("Nobody", id=workflow_id, task_queue=unique("nobody"))
            async with aiohttp.ClientSession() as http:
                workflows = f"{server.http_url}/api/v1/namespaces/default/workflows"
                async with http.get(workflows) as r:
                    assert r.status == 401  # the API still wants credentials
            context = await browser.new_context()
            page = await context.new_page()
            seen: list[str] = []
            page.on("request", lambda r: seen.append(str(r.headers) + (r.post_data or "")))
            await page.goto(f"{server.ui_url}/namespaces/default/workflows")
            await expect(page.get_by_role("link", name=workflow_id)).to_be_visible()
            await page.get_by_role("link", name=workflow_id).click()
            await expect(page.get_by_test_id("workflow-id-heading").first).to_contain_text(
                workflow_id
            )
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"test_the_ui_with_auth_on[{backend}].png"))
            assert seen and not any(key in request for request in seen)
            assert key not in await page.content()
            await context.close()
        finally:
            await asyncio.to_thread(server.stop)


# Every route of the app, against seeded data of each kind its pages show.

ROUTES = Path(ROOT, "ui", "src", "routes")
WORKFLOW_RUN = "namespaces/[namespace]/workflows/[workflow]/[run]"
# Texts of the library's error views and error alerts: none may show on a page.
ERROR_TEXTS = [
    "Uh oh. There's an error.",
    "An Error Occurred",
    "An unknown error occurred.",
    "We are having technical difficulties",
    "A error has occurred while querying",
    "There is an error with filtering",
    "Error fetching",
    "No Workers Running",
]


@activity.defn(name="ui_wait")
async def wait_until_cancelled() -> None:
    """Stays pending until its worker stops: the pending activity the pages show."""
    await asyncio.Event().wait()


@workflow.defn(name="UiChild")
class UiChild:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"child of {name}"


@workflow.defn(name="UiParent")
class UiParent:
    """Runs a child to completion, then waits on an activity that stays pending."""

    def __init__(self) -> None:
        self.stage = "started"

    @workflow.run
    async def run(self, name: str) -> None:
        self.stage = await workflow.execute_child_workflow(
            UiChild.run, name, id=f"{workflow.info().workflow_id}-child"
        )
        await workflow.execute_activity(
            wait_until_cancelled, start_to_close_timeout=timedelta(hours=1)
        )

    @workflow.query
    def stage_reached(self) -> str:
        return self.stage


@dataclasses.dataclass
class Seeded:
    """What the seeded pages show, by the route parameter naming it."""

    parent: WorkflowHandle[Any, Any]
    run_id: str
    task_queue: str
    worker_identity: str
    schedule_id: str
    job_id: str
    deployment: str
    build_id: str
    endpoint_id: str
    endpoint_name: str

    def parameters(self, route: str) -> dict[str, str]:
        """The values of `route`'s parameters (`[id]`: an endpoint's under nexus/, else an
        event's)."""
        event_or_endpoint = self.endpoint_id if route.startswith("nexus/") else "1"
        return {
            "namespace": NAMESPACE,
            "workflow": self.parent.id,
            "run": self.run_id,
            "id": event_or_endpoint,
            "jobId": self.job_id,
            "schedule": self.schedule_id,
            "queue": self.task_queue,
            "deployment": self.deployment,
        }


async def _eventually(check: Any, what: str) -> Any:
    """Poll `check()` until it answers something true, with a deadline."""
    try:
        async with asyncio.timeout(30):
            while not (found := await check()):
                await asyncio.sleep(0.1)  # polling the server for a seeded state
    except TimeoutError:
        raise AssertionError(f"{what}: not there in time") from None
    return found


@pytest.fixture(scope="module")
async def seeded(ui_client: Client) -> AsyncIterator[Seeded]:
    """A running parent (its child completed, an activity pending, a query handler, a worker
    polling), a schedule, a finished batch operation, a worker deployment version and a Nexus
    endpoint."""
    queue = unique("ui-pages")
    deployment = unique("ui-deployment")
    version = WorkerDeploymentVersion(deployment, "build-1")
    versioned = Worker(
        ui_client,
        task_queue=unique("ui-versioned"),
        workflows=[UiChild],
        deployment_config=WorkerDeploymentConfig(
            version=version,
            use_worker_versioning=True,
            default_versioning_behavior=VersioningBehavior.PINNED,
        ),
    )
    worker = Worker(
        ui_client,
        task_queue=queue,
        workflows=[UiParent, UiChild],
        activities=[wait_until_cancelled],
    )
    async with worker, versioned:
        parent = await ui_client.start_workflow(
            UiParent.run,
            "pages",
            id=unique("ui-parent"),
            task_queue=queue,
            memo={"seeded": "for every page"},
        )

        async def activity_pending() -> bool:
            return bool((await parent.describe()).raw_description.pending_activities)

        await _eventually(activity_pending, "the parent's pending activity")

        schedule_id = unique("ui-pages-schedule")
        action = ScheduleActionStartWorkflow(
            UiChild.run, "scheduled", id=unique("ui-scheduled"), task_queue=queue
        )
        spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))])
        await ui_client.create_schedule(schedule_id, Schedule(action=action, spec=spec))

        doomed = unique("ui-batched")
        for i in range(2):
            await ui_client.start_workflow("Nobody", id=f"{doomed}-{i}", task_queue=doomed)
        job_id = unique("ui-batch")
        await ui_client.workflow_service.start_batch_operation(
            wsr.StartBatchOperationRequest(
                namespace=NAMESPACE,
                job_id=job_id,
                reason="seeded",
                visibility_query=f'WorkflowId STARTS_WITH "{doomed}"',
                termination_operation=batch_pb.BatchOperationTermination(),
            )
        )

        async def batch_done() -> bool:
            described = await ui_client.workflow_service.describe_batch_operation(
                wsr.DescribeBatchOperationRequest(namespace=NAMESPACE, job_id=job_id)
            )
            return described.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED

        await _eventually(batch_done, "the batch operation")

        async def deployment_known() -> bool:
            listed = await ui_client.workflow_service.list_worker_deployments(
                wsr.ListWorkerDeploymentsRequest(namespace=NAMESPACE)
            )
            return any(d.name == deployment for d in listed.worker_deployments)

        await _eventually(deployment_known, "the worker deployment")

        endpoint_name = unique("ui-endpoint")
        target = nexus_pb.EndpointTarget.Worker(namespace=NAMESPACE, task_queue=queue)
        created = await ui_client.operator_service.create_nexus_endpoint(
            operator_pb.CreateNexusEndpointRequest(
                spec=nexus_pb.EndpointSpec(
                    name=endpoint_name, target=nexus_pb.EndpointTarget(worker=target)
                )
            )
        )
        yield Seeded(
            parent=parent,
            run_id=parent.result_run_id or "",
            task_queue=queue,
            worker_identity=ui_client.identity,
            schedule_id=schedule_id,
            job_id=job_id,
            deployment=deployment,
            build_id=version.build_id,
            endpoint_id=created.endpoint.id,
            endpoint_name=endpoint_name,
        )
        await parent.terminate("the pages were seen")


def _routes() -> list[str]:
    """Every page route of the app, as its directory under ui/src/routes ('' the root)."""
    pages = sorted(ROUTES.glob("**/+page.svelte"))
    return [page.parent.relative_to(ROUTES).as_posix().removeprefix(".") for page in pages]


def _path(route: str, seeded: Seeded) -> str:
    """The URL path of `route` with its parameters filled from the seeded data."""
    values = seeded.parameters(route)
    parts = [values[p[1:-1]] if p.startswith("[") else p for p in route.split("/")]
    return "/" + "/".join(parts)


def _main_content(page: Page, seeded: Seeded) -> dict[str, Locator]:
    """What each route's page shows when it works, by route."""
    run = WORKFLOW_RUN
    imported = "import/events/[namespace]/[workflow]/[run]/history"
    events = page.get_by_test_id("event-summary-row")
    return {
        "import/events": page.get_by_test_id("import-event-history"),
        f"{imported}/compact": page.get_by_role("navigation", name="Event History View"),
        f"{imported}/feed": page.get_by_role("navigation", name="Event History View"),
        f"{imported}/json": page.get_by_role("navigation", name="Event History View"),
        "namespaces": page.get_by_role("link", name=NAMESPACE, exact=True),
        "namespaces/[namespace]": page.get_by_test_id("namespace-title").filter(has_text=NAMESPACE),
        "namespaces/[namespace]/batch-operations": page.get_by_text(seeded.job_id),
        "namespaces/[namespace]/batch-operations/[jobId]": page.get_by_text(seeded.job_id),
        "namespaces/[namespace]/schedules": page.get_by_role("link", name=seeded.schedule_id),
        "namespaces/[namespace]/schedules/[schedule]": page.get_by_test_id("schedule-name").filter(
            has_text=seeded.schedule_id
        ),
        # The tab of the schedule's spec as it is, once the schedule is read.
        "namespaces/[namespace]/schedules/[schedule]/edit": page.get_by_role(
            "tab", name="Existing"
        ),
        "namespaces/[namespace]/schedules/create": page.get_by_test_id("schedule-name-input"),
        "namespaces/[namespace]/task-queues/[queue]": page.get_by_text(seeded.worker_identity),
        "namespaces/[namespace]/worker-deployments": page.get_by_text(seeded.deployment),
        "namespaces/[namespace]/worker-deployments/[deployment]": page.get_by_text(seeded.build_id),
        "namespaces/[namespace]/workflows": page.get_by_role("link", name=seeded.parent.id),
        f"{run}/call-stack": page.get_by_text("workflow: UiParent"),
        f"{run}/history": events.filter(has_text="Child Workflow Execution Completed"),
        f"{run}/history/events/[id]": events.filter(has_text="Workflow Execution Started"),
        f"{run}/metadata": page.get_by_text("for every page"),
        f"{run}/pending-activities": page.get_by_text("ui_wait"),
        # The query's name comes from the worker's metadata.
        f"{run}/query": page.get_by_role("button", name="stage_reached"),
        f"{run}/relationships": page.get_by_text(f"{seeded.parent.id}-child"),
        f"{run}/workers": page.get_by_text(seeded.worker_identity),
        "namespaces/[namespace]/workflows/start-workflow": page.get_by_test_id(
            "start-workflow-button"
        ),
        "nexus": page.get_by_role("button").filter(has_text=seeded.endpoint_name),
        "nexus/[id]": page.get_by_text(seeded.endpoint_name),
        "nexus/[id]/edit": page.get_by_role("heading", name=seeded.endpoint_name),
        "nexus/create": page.locator("#name"),
        "select-namespace": page.get_by_role("link", name=NAMESPACE, exact=True),
    }


class _ApiCalls:
    """The API calls a page makes: those in flight, and those answered with an error status
    (4xx as well as 5xx: 501 is an unimplemented RPC, a 400 a request Aion misreads). Long polls
    (`waitNewEvent`) are not waited for."""

    def __init__(self, page: Page) -> None:
        self.in_flight: set[Request] = set()
        self.failed: list[str] = []
        page.on("request", self._sent)
        page.on("requestfinished", self._done)
        page.on("requestfailed", self._done)
        page.on("response", self._answered)

    def _sent(self, request: Request) -> None:
        if "/api/v1/" in request.url and "waitNewEvent=true" not in request.url:
            self.in_flight.add(request)

    def _done(self, request: Request) -> None:
        self.in_flight.discard(request)

    def _answered(self, response: Response) -> None:
        if "/api/v1/" in response.url and response.status >= 400:
            self.failed.append(f"{response.status} {response.request.method} {response.url}")

    async def settled(self) -> None:
        """Wait until no call is in flight."""
        async with asyncio.timeout(20):
            while self.in_flight:
                await asyncio.sleep(0.05)  # polling the browser's calls


async def test_every_route_renders_with_seeded_data(
    ui_server: AionProcess, seeded: Seeded, browser: Browser
) -> None:
    """Each page of the app shows its content, with no error view, and every API call it makes
    succeeds."""
    routes = _routes()
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    calls = _ApiCalls(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expected = _main_content(page, seeded)
    problems: list[str] = []
    try:
        for route in routes:
            assert route in expected, f"add what the page of {route!r} shows to _main_content"
            calls.failed.clear()
            await page.goto(ui_server.ui_url + _path(route, seeded))
            try:
                await expect(expected[route].first).to_be_visible()
                await calls.settled()
                for text in ERROR_TEXTS:
                    await expect(page.get_by_text(text)).to_have_count(0, timeout=1)
                await expect(page.locator("[role=log] .bg-danger")).to_have_count(0, timeout=1)
                assert not calls.failed, calls.failed
            except AssertionError as error:
                problems.append(f"{route}: {error}")
            finally:
                shot = route.replace("/", "_").replace("[", "").replace("]", "") or "root"
                await page.screenshot(path=str(ARTIFACTS / f"route-{shot}.png"), full_page=True)
        # The query page runs the query the worker answers.
        await page.goto(ui_server.ui_url + _path(f"{WORKFLOW_RUN}/query", seeded))
        await page.get_by_role("button", name="Run Query").click()
        await expect(page.get_by_text("child of pages")).to_be_visible()
    finally:
        await context.close()
    assert not problems, "\n".join(problems)


# Schedules made, changed and run from the UI.


async def _schedule_for_the_ui(ui_client: Client, task_queue: str) -> ScheduleHandle:
    """A schedule starting UiChild every hour (no worker runs it)."""
    action = ScheduleActionStartWorkflow(
        UiChild.run, "scheduled", id=unique("ui-scheduled"), task_queue=task_queue
    )
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))])
    return await ui_client.create_schedule(
        unique("ui-schedule"), Schedule(action=action, spec=spec)
    )


async def _every_minutes(page: Page, minutes: str) -> None:
    """Choose an interval of `minutes` in the schedule form."""
    await page.get_by_test_id("interval-tab").click()
    await page.get_by_test_id("minute-interval-input").fill(minutes)


async def test_create_a_schedule_from_the_ui(
    ui_server: AionProcess, ui_client: Client, page: Page
) -> None:
    schedule_id = unique("made-in-the-ui")
    queue = unique("ui-nobody")
    await page.goto(_url(ui_server, "/schedules/create"))
    await page.locator("#name").fill(schedule_id)
    await page.locator("#workflowType").fill("UiChild")
    await page.locator("#workflowId").fill("from-a-ui-schedule")
    await page.locator("#taskQueue").fill(queue)
    await _every_minutes(page, "30")
    await page.get_by_test_id("create-schedule-button").click()
    # Once created, the app goes back to the list of schedules, which shows it.
    await expect(page.get_by_role("link", name=schedule_id)).to_be_visible()
    described = await ui_client.get_schedule_handle(schedule_id).describe()
    assert described.schedule.spec.intervals == [
        ScheduleIntervalSpec(every=timedelta(minutes=30), offset=timedelta(0))
    ]
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id, action.task_queue) == (
        "UiChild",
        "from-a-ui-schedule",
        queue,
    )


async def test_edit_a_schedule_from_the_ui(
    ui_server: AionProcess, ui_client: Client, page: Page
) -> None:
    handle = await _schedule_for_the_ui(ui_client, unique("ui-nobody"))
    moved_to = unique("ui-elsewhere")
    await page.goto(_url(ui_server, f"/schedules/{handle.id}"))
    await page.locator("#schedule-actions-menu-button").click()
    await page.get_by_test_id("edit-schedule").click()
    await expect(page.locator("#taskQueue")).not_to_have_value("")  # the schedule is read
    await page.locator("#taskQueue").fill(moved_to)
    await _every_minutes(page, "45")
    await page.get_by_test_id("create-schedule-button").click()  # "Save" when editing
    # Once saved, the app goes back to the schedule's page.
    await expect(page.get_by_test_id("schedule-name").first).to_contain_text(handle.id)
    described = await handle.describe()
    assert described.schedule.spec.intervals == [
        ScheduleIntervalSpec(every=timedelta(minutes=45), offset=timedelta(0))
    ]
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.task_queue) == ("UiChild", moved_to)


async def test_trigger_a_schedule_from_the_ui(
    ui_server: AionProcess, ui_client: Client, page: Page
) -> None:
    handle = await _schedule_for_the_ui(ui_client, unique("ui-nobody"))
    await page.goto(_url(ui_server, f"/schedules/{handle.id}"))
    await page.locator("#schedule-actions-menu-button").click()
    await page.get_by_test_id("trigger-schedule").click()
    modal = page.locator("#trigger-schedule-modal")
    await modal.get_by_test_id("confirm-modal-button").click()
    await expect(modal).to_be_hidden()

    async def started() -> list[Any]:
        return (await handle.describe()).info.recent_actions

    [action] = await _eventually(started, "the triggered run")
    # The run it started is listed on the schedule's page.
    await page.reload()
    await expect(page.get_by_text(action.action.workflow_id).first).to_be_visible()


async def test_an_imported_history_in_each_view(
    ui_server: AionProcess, seeded: Seeded, page: Page, tmp_path: Path
) -> None:
    """A history downloaded from Aion, imported in the app: its feed, compact and JSON views
    (the import pages every-route visits empty, as nothing is imported on a fresh load)."""
    download = (
        f"{ui_server.ui_url}/api/v1/namespaces/{NAMESPACE}/workflows/{seeded.parent.id}"
        f"/run/{seeded.run_id}/history.json"
    )
    async with aiohttp.ClientSession() as http, http.get(download) as r:
        history = tmp_path / "history.json"
        history.write_bytes(await r.read())
    await page.goto(f"{ui_server.ui_url}/import/events")
    await page.locator("#import-event-history-file-upload").set_input_files(history)
    await page.get_by_role("button", name="Import", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/history/feed$"))
    events = page.get_by_test_id("event-summary-row")
    await expect(events.filter(has_text="Child Workflow Execution Completed")).to_have_count(1)
    views = page.locator("#event-view-toggle")
    await views.get_by_text("Compact").click()
    await expect(page).to_have_url(re.compile(r"/history/compact$"))
    await expect(events.filter(has_text="UiChild").first).to_be_visible()
    await views.get_by_text("JSON").click()
    await expect(page).to_have_url(re.compile(r"/history/json$"))
    await expect(page.locator(".cm-content").first).to_contain_text('"WorkflowExecutionStarted"')
