"""Helpers of the database fault tests: a private PostgreSQL cluster the test may stop and
restart (never the shared one the other tests use), a probe that records how the server answers
clients while the database fails, and polling for a condition with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from temporalio.api.common.v1 import Payloads, WorkflowExecution
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.converter import default as default_converter
from temporalio.service import RPCError, RPCStatusCode

from tests.servers import AionProcess, free_port

T = TypeVar("T")

PROBE_TIMEOUT_S = 30.0  # a probe call's deadline: an answer later than this is a failure


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 30
) -> float:
    """Poll `condition` until it holds; the seconds it took. AssertionError after `timeout`."""
    started = time.monotonic()
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


async def until_ok(call: Callable[[], Awaitable[T]], seen: Counter[str], timeout: float = 90) -> T:
    """`call` again while it fails with UNAVAILABLE (after the SDK's own retries ran out: a
    long outage), as a client that keeps trying does; `seen` counts the statuses of the
    failures. Any other error is raised."""
    started = time.monotonic()
    while True:
        try:
            return await call()
        except RPCError as e:
            seen[RPCStatusCode(e.status).name] += 1
            if e.status != RPCStatusCode.UNAVAILABLE or time.monotonic() - started > timeout:
                raise
        await asyncio.sleep(0.2)


def errors_logged(node: AionProcess) -> list[str]:
    """The server's ERROR lines: unexpected exceptions (an RPC answered INTERNAL or UNKNOWN, a
    background task failing otherwise than on an unavailable database)."""
    return [line for line in node.output if " ERROR " in line]


def log(message: str) -> None:
    """A line of the test's measurements (shown with `pytest -s`, and in a failure's report)."""
    print(f"[reliability] {message}", flush=True)


# ---- a private PostgreSQL cluster --------------------------------------------------------


def _bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for tool in ("initdb", "pg_ctl"):
        found = shutil.which(tool)
        if found:
            candidates.append(str(Path(found).resolve().parent))
    for candidate in candidates:
        if all((Path(candidate) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(candidate)
    return None


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own in a temporary directory, on a free port; run as
    the `postgres` user when the test runs as root (initdb refuses root)."""

    bindir: Path
    root: Path
    user: pwd.struct_passwd | None
    port: int = field(default_factory=free_port)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str) -> None:
        sudo: dict[str, Any] = {}
        if self.user is not None:
            sudo = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        done = subprocess.run(args, capture_output=True, text=True, **sudo)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def init(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                "unix_socket_directories = ''\nfsync = off\n"
            )

    def _pg_ctl(self, action: str) -> None:
        log_file = str(self.root / "server.log")
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", log_file, "-m", "fast",
            "-w", "-t", "60", action,
        )  # fmt: skip

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        """A fast shutdown: open transactions are rolled back, connections closed."""
        self._pg_ctl("stop")

    def restart(self) -> None:
        self._pg_ctl("restart")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def private_postgres() -> PrivatePostgres:
    """A started private cluster; skips the test when PostgreSQL's binaries are missing."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("initdb/pg_ctl/postgres not found (/usr/lib/postgresql/*/bin or PATH)")
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and no `postgres` user to run initdb as")
    root = Path(tempfile.mkdtemp(prefix="aion-pgfault-"))
    root.chmod(0o755)
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    cluster = PrivatePostgres(bindir, root, user)
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster


def resume(pid: int) -> None:
    """SIGCONT, in case a test left the process stopped."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


@contextlib.asynccontextmanager
async def two_processes(dsn: str, logs: Path, num_shards: int) -> AsyncIterator[list[AionProcess]]:
    """Two `aion server start` processes sharing the database at `dsn`; each one's output is
    written to `logs` when they stop (a frozen one is resumed first)."""
    started: list[AionProcess] = []
    try:
        for _ in range(2):
            node = AionProcess(
                dsn=dsn,
                command="start",
                extra_args=["--num-shards", str(num_shards), "--log-level", "info"],
            )
            await asyncio.to_thread(node.start)
            started.append(node)
        yield started
    finally:
        for i, node in enumerate(started):
            if node.proc is not None:
                resume(node.proc.pid)
            await asyncio.to_thread(node.stop)
            (logs / f"aion-{i}.log").write_text("".join(node.output))


async def shard_owners(dsn: str) -> dict[int, tuple[str, int]]:
    """Each shard's owner (host id) and range id."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT shard_id, owner, range_id FROM shards")
    finally:
        await conn.close()
    return {r["shard_id"]: (r["owner"], r["range_id"]) for r in rows}


# ---- what clients see ---------------------------------------------------------------------


@dataclass
class Probe:
    """Signals a workflow every `interval` s with the next number (and `padding` bytes of
    filler), without the SDK's retries, and records every answer's status: what a client sees
    while the database fails. Every number acknowledged (OK) must reach the workflow."""

    client: Client
    workflow_id: str
    signal_name: str
    interval: float = 0.05
    padding: int = 0  # bytes of filler sent along with each number
    statuses: Counter[str] = field(default_factory=Counter)
    acknowledged: list[int] = field(default_factory=list)
    answers: list[tuple[float, float, str]] = field(default_factory=list)  # sent, answered, status
    _next: int = 0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def failures(self, since: float = 0.0) -> int:
        """Calls sent at or after `since` (monotonic) that failed."""
        return sum(1 for sent, _, status in self.answers if sent >= since and status != "OK")

    def first_failure(self, since: float) -> float | None:
        """When the first call sent at or after `since` that failed was sent."""
        return next((s for s, _, status in self.answers if s >= since and status != "OK"), None)

    def first_ok(self, since: float) -> float | None:
        """When the first call sent at or after `since` that succeeded was answered."""
        return next((a for s, a, status in self.answers if s >= since and status == "OK"), None)

    def slowest(self, since: float) -> float:
        """The longest a call sent at or after `since` waited for its answer."""
        return max((a - s for s, a, _ in self.answers if s >= since), default=0.0)

    def outage(self, since: float) -> float:
        """The first failure since `since` to the next success: how long this client saw the
        server refuse writes."""
        failed = self.first_failure(since)
        assert failed is not None
        ok = self.first_ok(failed)
        assert ok is not None
        return ok - failed

    async def _run(self) -> None:
        while True:
            value = self._next
            self._next += 1
            sent = time.monotonic()
            status = await self._signal(value)
            self.statuses[status] += 1
            if status == "OK":
                self.acknowledged.append(value)
            self.answers.append((sent, time.monotonic(), status))
            await asyncio.sleep(self.interval)

    async def _signal(self, value: int) -> str:
        request = SignalWorkflowExecutionRequest(
            namespace=self.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=self.workflow_id),
            signal_name=self.signal_name,
            input=Payloads(
                payloads=default_converter().payload_converter.to_payloads(
                    [value, "." * self.padding]
                )
            ),
            identity="probe",
        )
        try:
            await self.client.workflow_service.signal_workflow_execution(
                request, retry=False, timeout=timedelta(seconds=PROBE_TIMEOUT_S)
            )
        except RPCError as e:
            return RPCStatusCode(e.status).name
        return "OK"


# ---- a small file system ------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(size_mib: int) -> Iterator[Path]:
    """A tmpfs of `size_mib` MiB mounted on a fresh directory, unmounted on exit; skips the
    test when it cannot be mounted (not root, or no mount permission in this container)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited file system needs root")
    mountpoint = Path(tempfile.mkdtemp(prefix="aion-diskfull-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        mountpoint.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)
        mountpoint.rmdir()


def fill(path: Path) -> int:
    """Write `path` until its file system is full; the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as ballast:
        for chunk in (1 << 20, 1 << 12, 1 << 9):
            block = b"\0" * chunk
            while True:
                try:
                    written += ballast.write(block) or 0
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    return written
