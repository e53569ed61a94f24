"""Running the suite's pytest: the test tree, the command line, the environment, the process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from .common import IN_SUITE_VENV, log

HANG_PLUGIN = "sdk_suite_hang"
"""Module name of the pytest plugin in in_suite_venv/ (see its docstring)."""


def check_tree(tree: Path) -> Path:
    """`tree`, resolved, after checking it is an extracted sdk-python test tree (exits if not)."""
    tree = tree.resolve()
    if not (tree / "tests" / "conftest.py").is_file() or not (tree / "pyproject.toml").is_file():
        sys.exit(
            f"sdk-suite: {tree} is not an sdk-python test tree (tests/conftest.py + pyproject.toml);"
            " see `scripts/sdk-suite --help` for how to extract it"
        )
    if (tree / "temporalio").exists():
        sys.exit(f"sdk-suite: {tree}/temporalio would shadow the temporalio wheel; remove it")
    return tree


def pytest_command(
    python: Path, address: str, junit: Path, timeout: int, args: list[str]
) -> list[str]:
    """The pytest command line for running `args` (files, pytest options) against `address`."""
    return [
        str(python), "-m", "pytest", *args,
        "-E", address,
        "-p", "no:cacheprovider",
        "--timeout", str(timeout),
        "-o", "timeout_func_only=true",
        "--junitxml", str(junit),
        # captured logs of failing tests go into the XML (the SDK worker's warnings explain hangs)
        "-o", "junit_logging=log",
        "-o", "junit_log_passing_tests=false",
        "-p", HANG_PLUGIN,
        "-rfE", "-v",
    ]  # fmt: skip


def suite_env() -> dict[str, str]:
    """The environment for the suite's interpreter: ours, minus any venv, plus the plugin."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = str(IN_SUITE_VENV)
    return env


def run_pytest(
    python: Path,
    tree: Path,
    address: str,
    junit: Path,
    timeout: int,
    args: list[str],
    out_path: Path | None = None,
    wall_limit: float | None = None,
) -> int:
    """Run pytest in `tree` and return its exit code (-9 if killed at `wall_limit` seconds).
    Its output goes to `out_path` if given, else to ours."""
    junit.parent.mkdir(parents=True, exist_ok=True)
    cmd = pytest_command(python, address, junit, timeout, args)
    log("running: " + " ".join(cmd) + f"   (in {tree})")
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(out_path, "w")) if out_path else None
        proc = subprocess.Popen(
            cmd,
            cwd=tree,
            env=suite_env(),
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        try:
            return proc.wait(wall_limit)
        except subprocess.TimeoutExpired:
            log(f"pytest (pid {proc.pid}) still running after {wall_limit:.0f} s: killing it")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return -9
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
