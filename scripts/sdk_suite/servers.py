"""Starting and stopping the servers the suite is compared on: the reference dev server and Aion,
each on free loopback ports with an empty in-memory database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .common import IN_SUITE_VENV, ROOT, log
from .pytest_run import suite_env

TEMPORAL = ROOT / ".venv" / "bin" / "temporal"
AION_PYTHON = ROOT / ".venv" / "bin" / "python"
READY_PROBE = IN_SUITE_VENV / "ready_probe.py"
READY_TIMEOUT = 90.0
READY_POLL_INTERVAL = 0.5
STOP_TIMEOUT = 20.0

# What the suite's conftest (tests/conftest.py at 1.31.0) and the SDK's ephemeral-server launcher
# pass to the dev server when the suite starts its own.
DYNAMIC_CONFIG = [
    "frontend.enableServerVersionCheck=false",
    "frontend.enableUpdateWorkflowExecution=true",
    "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
    "system.forceSearchAttributesCacheRefreshOnRead=true",
    "limit.historyCount.suggestContinueAsNew=50",
    "system.enableEagerWorkflowStart=true",
    "frontend.enableExecuteMultiOperation=true",
    "frontend.workerVersioningWorkflowAPIs=true",
    "frontend.workerVersioningDataAPIs=true",
    "system.enableDeploymentVersions=true",
    "frontend.activityAPIsEnabled=true",
    "frontend.enableCancelWorkerPollsOnShutdown=true",
    "component.nexusoperations.recordCancelRequestCompletionEvents=true",
    "activity.enableStandalone=true",
    "activity.startDelayEnabled=true",
    "history.enableChasm=true",
    "history.enableTransitionHistory=true",
    "history.enableCHASMCallbacks=true",
    "history.enableCHASMSignalBacklinks=true",
    "nexusoperation.enableStandalone=true",
    'system.system.refreshNexusEndpointsMinWait="0s"',
    "history.enableSignalWithStartFromWorkflow=true",
    "history.enableUpdateCallbacks=true",
]


@dataclass
class Server:
    """A server process started by start_server."""

    name: str
    proc: subprocess.Popen[bytes]
    address: str
    log_path: Path
    command: list[str]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def aion_takes_flags(mode: str) -> bool:
    """Whether to pass Aion the suite's dynamic config: `on`, `off`, or `auto` (if its start-dev
    --help lists --dynamic-config-value)."""
    if mode in ("on", "off"):
        return mode == "on"
    out = subprocess.run(
        [str(AION_PYTHON), "-m", "aion", "server", "start-dev", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    return "--dynamic-config-value" in out


def server_command(name: str, port: int, aion_flags: bool) -> list[str]:
    """The command line that starts server `name` (reference or aion) on `port`."""
    dc = [a for kv in DYNAMIC_CONFIG for a in ("--dynamic-config-value", kv)]
    if name == "reference":
        return [
            str(TEMPORAL), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(port), "--ui-port", str(free_port()), "--log-level", "error", *dc,
        ]  # fmt: skip
    return [
        str(AION_PYTHON), "-m", "aion", "server", "start-dev", "--headless", "--ip", "127.0.0.1",
        "--port", str(port), "--log-level", "info", *(dc if aion_flags else []),
    ]  # fmt: skip


def start_server(name: str, python: Path, log_path: Path, aion_flags: bool) -> Server:
    """Start server `name`, its output to `log_path`, and wait until it answers (probed with the
    suite's interpreter `python`). Raises RuntimeError if it exits or is not ready in time."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    cmd = server_command(name, port, aion_flags)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    log(f"{name} server pid {proc.pid} on {address}, log {log_path}")
    server = Server(name, proc, address, log_path, cmd)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} server exited with code {proc.returncode}; see {log_path}")
        probe = subprocess.run(
            [str(python), str(READY_PROBE), address], capture_output=True, env=suite_env()
        )
        if probe.returncode == 0:
            return server
        if time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(
                f"{name} server not ready after {READY_TIMEOUT:.0f} s; see {log_path}"
            )
        time.sleep(READY_POLL_INTERVAL)


def stop_server(server: Server) -> int | None:
    """SIGTERM by PID, SIGKILL if it lingers. Returns the exit code if it had already exited."""
    proc = server.proc
    already = proc.poll()
    if already is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"{server.name} server pid {proc.pid} ignored SIGTERM: SIGKILL")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return already
