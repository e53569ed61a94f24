"""`compare`: each test file on a fresh server of each kind in turn, recorded for the report."""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .common import ROOT, log
from .pytest_run import pytest_command, run_pytest
from .servers import start_server, stop_server
from .venv import dotted, python_version


@dataclass
class CompareRun:
    """What every file's run in one compare shares."""

    python: Path  # the suite's interpreter
    tree: Path
    results: Path
    logs: Path
    timeout: int
    aion_flags: bool
    file_wall_limit: float
    stamp: str  # names this compare's server logs


def slug(test_file: str) -> str:
    """`tests_worker_test_workflow` for tests/worker/test_workflow.py (result file names)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", test_file.removesuffix(".py")).strip("_")


def git_describe() -> str:
    """Aion's commit, and whether aion/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "aion"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return head + (" + uncommitted changes under aion/" if dirty else "")
    except OSError:
        return "unknown"


def run_file(run: CompareRun, server_name: str, test_file: str) -> None:
    """Run one test file against a fresh server and write RESULTS/<server>/<slug>.{xml,out,
    meta.json}; a server that does not start is recorded as the file's problem."""
    out_dir = run.results / server_name
    out_dir.mkdir(parents=True, exist_ok=True)
    name = slug(test_file)
    junit = out_dir / f"{name}.xml"
    junit.unlink(missing_ok=True)
    meta_path = out_dir / f"{name}.meta.json"
    log_path = run.logs / f"{server_name}-{name}-{run.stamp}.log"
    meta: dict[str, object] = {
        "server": server_name,
        "file": test_file,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "server_log": str(log_path),
        "timeout": run.timeout,
    }
    if server_name == "aion":
        meta["aion_commit"] = git_describe()
        meta["aion_flags"] = run.aion_flags
    try:
        server = start_server(server_name, run.python, log_path, run.aion_flags)
    except RuntimeError as exc:
        log(str(exc))
        meta["problem"] = f"server did not start: {exc}"
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        return
    meta["server_command"] = " ".join(server.command)
    meta["python"] = dotted(python_version(str(run.python)))
    meta["tree"] = str(run.tree)
    t0 = time.monotonic()
    try:
        rc = run_pytest(
            run.python,
            run.tree,
            server.address,
            junit,
            run.timeout,
            [test_file],
            out_path=out_dir / f"{name}.out",
            wall_limit=run.file_wall_limit,
        )
    finally:
        exited = stop_server(server)
    meta["pytest_exit"] = rc
    meta["seconds"] = round(time.monotonic() - t0, 1)
    meta["server_exited_during_run"] = exited
    # the command as one would rerun it: from the repository, against any server
    venv_python = Path(".sdk-suite/venv/bin/python")
    rerun = pytest_command(venv_python, "ADDRESS", Path(junit.name), run.timeout, [test_file])
    meta["pytest_command"] = " ".join(rerun)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    log(
        f"{server_name} {test_file}: pytest exit {rc} in {meta['seconds']} s"
        + (f"; SERVER HAD EXITED with {exited}" if exited is not None else "")
    )


def compare(run: CompareRun, servers: list[str], files: list[str]) -> None:
    """Each file on each server, one server at a time, never two at once."""
    for server_name in servers:
        for test_file in files:
            run_file(run, server_name, test_file)
