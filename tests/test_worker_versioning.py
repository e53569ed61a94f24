"""Worker Versioning through the SDK: two workers of different versions of one deployment on
one task queue. Pinned workflows stay on the version they started on; auto-upgrade workflows move
to the new current version; a ramp sends the share of new workflows the ramp says (picked by
workflow id, as Temporal); a version no pinned workflow runs on any more drains."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, VersionDrainageStatus
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    DescribeWorkerDeploymentVersionRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
    UpdateWorkflowExecutionOptionsRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    PinnedVersioningOverride,
    VersioningBehavior,
    WorkerDeploymentVersion,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkerDeploymentConfig

from aion.farmhash import fingerprint32
from tests.helpers import Storage, unique

pytestmark = pytest.mark.timeout(120)


class _Waits:
    VERSION = ""

    def __init__(self) -> None:
        self.done = False

    async def wait_then_report(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return self.VERSION

    @workflow.signal
    def finish(self) -> None:
        self.done = True


# The same three workflow types as each build's code defines them: each returns its build.


@workflow.defn(name="Pinned", versioning_behavior=VersioningBehavior.PINNED)
class PinnedV1(_Waits):
    VERSION = "1.0"

    @workflow.run
    async def run(self) -> str:
        return await self.wait_then_report()


@workflow.defn(name="Upgrading", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class UpgradingV1(_Waits):
    VERSION = "1.0"

    @workflow.run
    async def run(self) -> str:
        return await self.wait_then_report()


@workflow.defn(name="Quick", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class QuickV1(_Waits):
    VERSION = "1.0"

    @workflow.run
    async def run(self) -> str:
        return self.VERSION


@workflow.defn(name="Pinned", versioning_behavior=VersioningBehavior.PINNED)
class PinnedV2(_Waits):
    VERSION = "2.0"

    @workflow.run
    async def run(self) -> str:
        return await self.wait_then_report()


@workflow.defn(name="Upgrading", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class UpgradingV2(_Waits):
    VERSION = "2.0"

    @workflow.run
    async def run(self) -> str:
        return await self.wait_then_report()


@workflow.defn(name="Quick", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class QuickV2(_Waits):
    VERSION = "2.0"

    @workflow.run
    async def run(self) -> str:
        return self.VERSION


@workflow.defn(name="Pinned")  # an unversioned worker declares no behaviour
class PinnedUnversioned(_Waits):
    VERSION = "unversioned"

    @workflow.run
    async def run(self) -> str:
        return await self.wait_then_report()


@workflow.defn(name="Upgrading")  # an unversioned worker declares no behaviour
class UpgradingUnversioned(_Waits):
    VERSION = "unversioned"

    @workflow.run
    async def run(self) -> str:
        return await self.wait_then_report()


@workflow.defn(name="Quick")  # an unversioned worker declares no behaviour
class QuickUnversioned(_Waits):
    VERSION = "unversioned"

    @workflow.run
    async def run(self) -> str:
        return self.VERSION


@workflow.defn(name="Hopping", versioning_behavior=VersioningBehavior.PINNED)
class HoppingV1:
    @workflow.run
    async def run(self, hop: bool) -> str:
        if hop:
            workflow.continue_as_new(
                False,
                initial_versioning_behavior=workflow.ContinueAsNewVersioningBehavior.USE_RAMPING_VERSION,
            )
        return "1.0"


@workflow.defn(name="Hopping", versioning_behavior=VersioningBehavior.PINNED)
class HoppingV2:
    @workflow.run
    async def run(self, hop: bool) -> str:
        if hop:
            workflow.continue_as_new(
                False,
                initial_versioning_behavior=workflow.ContinueAsNewVersioningBehavior.USE_RAMPING_VERSION,
            )
        return "2.0"


WORKFLOWS = {
    "1.0": [PinnedV1, UpgradingV1, QuickV1, HoppingV1],
    "2.0": [PinnedV2, UpgradingV2, QuickV2, HoppingV2],
    "unversioned": [PinnedUnversioned, UpgradingUnversioned, QuickUnversioned],
}


def _worker(client: Client, task_queue: str, deployment: str, build_id: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS[build_id],
        workflow_runner=UnsandboxedWorkflowRunner(),
        deployment_config=WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment, build_id), use_worker_versioning=True
        ),
    )


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 60
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _registered(client: Client, deployment: str, *build_ids: str) -> None:
    """Wait until the versions' pollers have registered them."""

    async def visible() -> bool:
        try:
            described = await client.workflow_service.describe_worker_deployment(
                DescribeWorkerDeploymentRequest(
                    namespace=client.namespace, deployment_name=deployment
                )
            )
        except RPCError as e:
            assert e.status == RPCStatusCode.NOT_FOUND
            return False
        seen = {
            s.deployment_version.build_id
            for s in described.worker_deployment_info.version_summaries
        }
        return set(build_ids) <= seen

    await _eventually(visible, f"versions {build_ids} of {deployment}")


async def _set_current(client: Client, deployment: str, build_id: str) -> None:
    await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace, deployment_name=deployment, build_id=build_id
        )
    )


@pytest.fixture
async def versioned(client: Client) -> AsyncIterator[tuple[str, str]]:
    """Workers of builds 1.0 and 2.0 of a new deployment on a new task queue."""
    deployment, task_queue = unique("dep"), unique("tq")
    async with (
        _worker(client, task_queue, deployment, "1.0"),
        _worker(client, task_queue, deployment, "2.0"),
    ):
        await _registered(client, deployment, "1.0", "2.0")
        yield deployment, task_queue


async def _start(
    client: Client, name: str, task_queue: str, **kwargs: Any
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        name, id=kwargs.pop("id", None) or unique(name), task_queue=task_queue, **kwargs
    )


async def _first_task_done(handle: WorkflowHandle[Any, Any]) -> None:
    async def done() -> bool:
        events = [e.event_type async for e in handle.fetch_history_events()]
        return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in events

    await _eventually(done, "the first workflow task")


async def test_pinned_stays_on_its_version_and_auto_upgrade_moves(
    client: Client, versioned: tuple[str, str]
) -> None:
    deployment, task_queue = versioned
    await _set_current(client, deployment, "1.0")
    pinned = await _start(client, "Pinned", task_queue)
    upgrading = await _start(client, "Upgrading", task_queue)
    await _first_task_done(pinned)
    await _first_task_done(upgrading)

    described = (await pinned.describe()).raw_description.workflow_execution_info
    assert described.versioning_info.behavior == VersioningBehavior.PINNED.value
    assert described.versioning_info.deployment_version.build_id == "1.0"
    assert described.worker_deployment_name == deployment

    await _set_current(client, deployment, "2.0")
    await pinned.signal("finish")
    await upgrading.signal("finish")
    assert await pinned.result() == "1.0"
    assert await upgrading.result() == "2.0"
    assert await (await _start(client, "Quick", task_queue)).result() == "2.0"

    completed = [
        e.workflow_task_completed_event_attributes
        async for e in pinned.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    assert {c.deployment_version.build_id for c in completed} == {"1.0"}
    assert {c.versioning_behavior for c in completed} == {VersioningBehavior.PINNED.value}
    started = [
        e.workflow_task_started_event_attributes
        async for e in pinned.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    ]
    assert started[-1].target_worker_deployment_version_changed


async def test_no_current_version_leaves_new_work_to_unversioned_workers(
    client: Client, versioned: tuple[str, str]
) -> None:
    _, task_queue = versioned
    handle = await _start(client, "Quick", task_queue)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS["unversioned"],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        assert await handle.result() == "unversioned"


async def test_ramping_sends_the_set_share_of_new_workflows(
    client: Client, versioned: tuple[str, str]
) -> None:
    deployment, task_queue = versioned
    await _set_current(client, deployment, "1.0")
    await client.workflow_service.set_worker_deployment_ramping_version(
        SetWorkerDeploymentRampingVersionRequest(
            namespace=client.namespace,
            deployment_name=deployment,
            build_id="2.0",
            percentage=30,
        )
    )
    ids = [f"{deployment}-ramp-{i}" for i in range(30)]
    handles = [await _start(client, "Quick", task_queue, id=i) for i in ids]
    ran_on = [await h.result() for h in handles]
    expected = ["2.0" if 100 * fingerprint32(i.encode()) / 2**32 <= 30 else "1.0" for i in ids]
    assert ran_on == expected
    assert 0 < ran_on.count("2.0") < len(ids)  # some of each: about the set share


async def test_a_version_drains_once_its_pinned_workflows_close(storage: Storage) -> None:
    server = storage.server(
        extra_args=[
            "--dynamic-config-value",
            'matching.wv.VersionDrainageStatusRefreshInterval="1s"',
            "--dynamic-config-value",
            'matching.wv.VersionDrainageStatusVisibilityGracePeriod="1s"',
        ]
    )
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        deployment, task_queue = unique("dep"), unique("tq")
        async with (
            _worker(client, task_queue, deployment, "1.0"),
            _worker(client, task_queue, deployment, "2.0"),
        ):
            await _registered(client, deployment, "1.0", "2.0")
            await _set_current(client, deployment, "1.0")
            pinned = await _start(client, "Pinned", task_queue)
            await _first_task_done(pinned)
            await _set_current(client, deployment, "2.0")

            async def drainage() -> int:
                described = await client.workflow_service.describe_worker_deployment_version(
                    DescribeWorkerDeploymentVersionRequest(
                        namespace=client.namespace, version=f"{deployment}.1.0"
                    )
                )
                return described.worker_deployment_version_info.drainage_info.status

            assert await drainage() == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINING

            async def checked_while_running() -> bool:
                described = await client.workflow_service.describe_worker_deployment_version(
                    DescribeWorkerDeploymentVersionRequest(
                        namespace=client.namespace, version=f"{deployment}.1.0"
                    )
                )
                info = described.worker_deployment_version_info.drainage_info
                return (
                    info.last_checked_time.ToNanoseconds() > info.last_changed_time.ToNanoseconds()
                )

            await _eventually(checked_while_running, "a drainage check")
            assert await drainage() == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINING

            await pinned.signal("finish")
            assert await pinned.result() == "1.0"

            async def drained() -> bool:
                return await drainage() == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED

            await _eventually(drained, "version 1.0 to drain")
    finally:
        await asyncio.to_thread(server.stop)


async def test_versioning_overrides_on_start_and_by_update(
    client: Client, versioned: tuple[str, str]
) -> None:
    deployment, task_queue = versioned
    await _set_current(client, deployment, "2.0")
    pinned_to_v1 = PinnedVersioningOverride(WorkerDeploymentVersion(deployment, "1.0"))
    started = await _start(client, "Quick", task_queue, versioning_override=pinned_to_v1)
    assert await started.result() == "1.0"
    first = [e async for e in started.fetch_history_events()][0]
    override = first.workflow_execution_started_event_attributes.versioning_override
    assert override.pinned.version.build_id == "1.0" and not override.pinned_version

    # A workflow pinned to 2.0 by its worker, overridden to auto-upgrade, moves to current 1.0.
    pinned = await _start(client, "Pinned", task_queue)
    await _first_task_done(pinned)
    await _set_current(client, deployment, "1.0")
    request = UpdateWorkflowExecutionOptionsRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=pinned.id),
        workflow_execution_options=WorkflowExecutionOptions(
            versioning_override=VersioningOverride(auto_upgrade=True)
        ),
        update_mask=FieldMask(paths=["versioning_override"]),
        identity="operator",
    )
    updated = await client.workflow_service.update_workflow_execution_options(request)
    assert updated.workflow_execution_options.versioning_override.auto_upgrade
    await client.workflow_service.update_workflow_execution_options(request)  # no change
    described = (await pinned.describe()).raw_description.workflow_execution_info
    assert described.versioning_info.versioning_override.auto_upgrade
    await pinned.signal("finish")
    assert await pinned.result() == "1.0"
    options_updated = [
        e
        async for e in pinned.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED
    ]
    assert len(options_updated) == 1

    with pytest.raises(RPCError) as bad:
        await client.workflow_service.update_workflow_execution_options(
            UpdateWorkflowExecutionOptionsRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=pinned.id),
                update_mask=FieldMask(paths=["bogus_path"]),
            )
        )
    assert bad.value.status == RPCStatusCode.INVALID_ARGUMENT


async def test_continue_as_new_onto_the_ramping_version(
    client: Client, versioned: tuple[str, str]
) -> None:
    """Found by the SDK's test_continue_as_new_with_ramping_version: the new run goes to the
    ramping version even at 0 %."""
    deployment, task_queue = versioned
    await _set_current(client, deployment, "1.0")
    await client.workflow_service.set_worker_deployment_ramping_version(
        SetWorkerDeploymentRampingVersionRequest(
            namespace=client.namespace, deployment_name=deployment, build_id="2.0", percentage=0
        )
    )
    assert await (await _start(client, "Hopping", task_queue, args=[True])).result() == "2.0"
    assert await (await _start(client, "Hopping", task_queue, args=[False])).result() == "1.0"
