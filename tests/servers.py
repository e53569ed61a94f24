"""Real processes for tests: Aion dev servers, `aion codec-server`, the reference dev server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(kw_only=True)
class ChildProcess:
    """A child process whose output is collected line by line; `stop()` ends it."""

    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    def _launch(
        self, args: list[str], env: dict[str, str], what: str, ready: Callable[[str], bool]
    ) -> None:
        """Start `args`; return once a line of its output is `ready`, else raise RuntimeError
        with its output (the process is stopped)."""
        self.output = []
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
        seen = threading.Event()
        done = threading.Event()

        def pump() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                self.output.append(line)
                if not seen.is_set() and ready(line):
                    seen.set()
                    done.set()
            done.set()  # the output ended: the process is gone

        threading.Thread(target=pump, daemon=True).start()
        if not done.wait(READY_TIMEOUT) or not seen.is_set():
            self.stop()
            raise RuntimeError(f"{what} did not start:\n" + "".join(self.output))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class AionProcess(ChildProcess):
    """An `aion server start-dev` child process; `start()` returns once it prints its address."""

    db_filename: str | None = None
    dsn: str | None = None  # PostgreSQL instead of SQLite
    namespaces: list[str] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    command: str = "start-dev"  # or "start", the production command
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)  # added to this process's environment
    ui: bool = False  # start-dev's Web UI (on a free port); headless otherwise

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """Base URL of its HTTP API (start-dev opens one on a free port and prints it)."""
        for line in self.output:
            if line.startswith("HTTP API on "):
                return line.removeprefix("HTTP API on ").strip()
        raise RuntimeError("the server printed no HTTP API address")

    @property
    def ui_url(self) -> str:
        """Base URL of its Web UI (with `ui=True`)."""
        for line in self.output:
            if line.startswith("Web UI on "):
                return line.removeprefix("Web UI on ").strip()
        raise RuntimeError("the server printed no Web UI address")

    def start(self) -> str:
        args = [sys.executable, "-m", "aion", "server", self.command, "--ip", "127.0.0.1"]
        args += ["--port", str(self.port)]
        if self.db_filename:
            args += ["--db-filename", self.db_filename]
        if self.dsn:
            args += ["--dsn", self.dsn]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        if self.command == "start-dev":
            args += ["--ui-port", str(free_port())] if self.ui else ["--headless"]
        args += self.extra_args
        self._launch(args, self.env, "aion server", lambda line: self.address in line)
        return self.address

    def kill(self) -> None:
        """SIGKILL: the crash the durability tests simulate."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class CodecServerProcess(ChildProcess):
    """An `aion codec-server --port 0` child process; `start()` returns its base URL once it
    prints it."""

    key_file: str
    cors_origins: list[str] = field(default_factory=list)
    token: str | None = None
    extra_args: list[str] = field(default_factory=list)
    url: str = ""

    def start(self) -> str:
        args = [sys.executable, "-m", "aion", "codec-server", "--port", "0"]
        args += ["--key-file", self.key_file]
        for origin in self.cors_origins:
            args += ["--cors-origin", origin]
        if self.token:
            args += ["--token", self.token]
        self._launch(args + self.extra_args, {}, "aion codec-server", self._listening)
        return self.url

    def _listening(self, line: str) -> bool:
        if "codec server listening on http" not in line:
            return False
        self.url = line.rsplit(" ", 1)[1].strip()
        return True
