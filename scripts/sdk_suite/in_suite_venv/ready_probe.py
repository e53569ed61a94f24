"""Exit 0 once the server at argv[1] (host:port) answers DescribeNamespace for `default`.

Runs under the suite's venv (its temporalio), not Aion's.
"""

import asyncio
import sys

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

PROBE_TIMEOUT_SECONDS = 10


async def describe_default_namespace(address: str) -> None:
    client = await Client.connect(address)
    request = DescribeNamespaceRequest(namespace="default")
    await client.workflow_service.describe_namespace(request)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(describe_default_namespace(sys.argv[1]), PROBE_TIMEOUT_SECONDS))
