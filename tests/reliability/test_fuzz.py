"""Every RPC of WorkflowService and OperatorService, sent random bytes, corrupt protobuf and
hostile messages (see `tests.reliability.fuzz`), answers a clean status: never INTERNAL or
UNKNOWN, never a hang, never an error the client cannot read; and the server then still runs a
workflow to completion.

The test starts a server of its own on each backend rather than using the session's: the bodies
delete and update namespaces (including "default") and register new ones."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import grpc
import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import Storage
from tests.reliability import fuzz

pytestmark = pytest.mark.timeout(120)

# The bodies that do not parse, and what the INVALID_ARGUMENT message names as the problem.
UNPARSABLE = {
    "truncated field": "corrupt wire format",
    "bad wire type": "corrupt wire format",
    "deep unknown groups": "corrupt wire format",
    "invalid UTF-8": "invalid UTF-8",
    "deep nesting": "recursion limit",
}


@activity.defn
async def greet(name: str) -> str:
    return f"still here, {name}"


@workflow.defn
class Survivor:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=30)
        )


def _unclean(outcome: fuzz.Outcome) -> bool:
    code, rpc = outcome.code, outcome.rpc.name
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        return True
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return rpc not in fuzz.WAITING_RPCS
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # the client could not read the answer
        return "metadata size" in outcome.details
    if outcome.case.kind in UNPARSABLE:
        problem = UNPARSABLE[outcome.case.kind]
        return code != grpc.StatusCode.INVALID_ARGUMENT or problem not in outcome.details
    return False


async def test_hostile_requests_get_clean_statuses(storage: Storage) -> None:
    server = storage.server(namespaces=[fuzz.UNTOUCHED_NAMESPACE])
    await asyncio.to_thread(server.start)
    try:
        outcomes = await fuzz.send_all(server.address)
        assert len(outcomes) > 30 * len(fuzz.rpcs())
        unclean = [
            f"{o.rpc.name} #{o.index} ({o.case.kind}): {o.code.name} {o.details[:200]}"
            for o in outcomes
            if _unclean(o)
        ]
        assert not unclean, "\n".join(unclean)
        # No request failed inside the server (a background task of a namespace the bodies
        # deleted may still log its failure: not the requests' doing).
        failures = [
            line for line in server.output if "ERROR aion.frontend" in line or "ERROR grpc" in line
        ]
        assert not failures, "".join(failures[:20])

        client = await Client.connect(server.address, namespace=fuzz.UNTOUCHED_NAMESPACE)
        queue = f"after-fuzz-{uuid.uuid4()}"
        async with Worker(
            client,
            task_queue=queue,
            workflows=[Survivor],
            activities=[greet],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            result = await client.execute_workflow(
                Survivor.run, "fuzzer", id=f"survivor-{uuid.uuid4()}", task_queue=queue
            )
        assert result == "still here, fuzzer"
    finally:
        await asyncio.to_thread(server.stop)
