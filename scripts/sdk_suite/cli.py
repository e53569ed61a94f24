"""Run the official Temporal Python SDK's own test suite against a server, and compare servers.

The suite is NOT part of this repository and must never be committed. Get the tree (its `tests/`
directory and `pyproject.toml`, at tag 1.31.0, which pairs with the `temporalio==1.31.0` wheel)
from a clone of https://github.com/temporalio/sdk-python:

    git clone --bare https://github.com/temporalio/sdk-python /tmp/sdk-python.git   # or any mirror
    mkdir -p /tmp/sdk-python-1.31.0
    git --git-dir=/tmp/sdk-python.git archive 1.31.0 tests pyproject.toml | tar x -C /tmp/sdk-python-1.31.0

(Extract only `tests/` and `pyproject.toml`: the SDK's source package would shadow the wheel.)

Usage:

    scripts/sdk-suite TREE ADDRESS [--junit PATH] [--timeout S] [FILES / PYTEST ARGS...]
        Run the suite in TREE against the server at ADDRESS (host:port) and write a junit XML
        (default .sdk-suite/results/junit.xml). FILES default to the core modules
        (tests/worker/test_workflow.py tests/worker/test_activity.py tests/test_client.py
        tests/worker/test_update_with_start.py);
        anything else (e.g. `-k hello`, `tests/test_client.py::test_start_id_reuse_policy`)
        is handed to pytest.

    scripts/sdk-suite compare TREE [FILES...] [--servers reference,aion] [--timeout S]
                              [--aion-flags auto|on|off] [--results DIR] [--logs DIR]
                              [--output PATH] [--no-report]
        For each server in turn (never two at once) and each file: start a fresh server on free
        loopback ports with an empty in-memory database, run that file against it, stop the
        server by PID. The reference is `.venv/bin/temporal server start-dev --headless` with the
        dynamic config the suite's conftest passes when it starts its own server; Aion is
        `.venv/bin/python -m aion server start-dev --log-level info`, given the same
        `--dynamic-config-value` flags only if --aion-flags says so (auto: if its --help lists
        the flag). junit XML and pytest output go to RESULTS/<server>/ (default
        .sdk-suite/results), server logs to LOGS (default /tmp/sdk-suite-logs). Then
        regenerates docs/compatibility.md from everything in RESULTS (unless --no-report).
        Running `--servers reference` and later `--servers aion` fills the same RESULTS.

    scripts/sdk-suite report [--results DIR] [--output PATH]
        Regenerate docs/compatibility.md from the junit XMLs already in RESULTS.

    scripts/sdk-suite venv
        Only build the suite's venv and print its interpreter.

The suite runs in its own venv, .sdk-suite/venv (created once; gitignored), with the pins measured
for tag 1.31.0: temporalio[opentelemetry,pydantic,grpc]==1.31.0 (binary wheel), pytest==9.1.1,
pytest-asyncio==0.21.2 (pytest 9.2 breaks collection), pytest-timeout, psutil, cryptography,
httpx, toml, googleapis-common-protos. Those are all the third-party imports of tests/conftest.py,
tests/helpers, tests/worker, tests/nexus and the top-level test modules (tests/contrib/* need their
own extras such as openai-agents or langgraph and are not installed; tests/test_prepare_release.py
imports the SDK repo's scripts/, which is not extracted). The venv's Python is the newest 3.10-3.14
found on PATH or under ~/.pyenv/versions, or $SDK_SUITE_PYTHON (see find_python in
scripts/sdk_suite/venv.py for why not simply python3).

pytest runs as: python -m pytest FILES -E ADDRESS -p no:cacheprovider --timeout S
-o timeout_func_only=true (S = 120 by default), from TREE, plus a small plugin of ours
(scripts/sdk_suite/in_suite_venv/sdk_suite_hang.py) that adds to a failure report where a
timed-out test was waiting (its await chain) and what a temporalio exception wraps (`.cause`,
which pytest does not show), so the report can say why a test failed.

The code: scripts/sdk_suite/ — cli (this), venv, pytest_run, servers, compare, junit (reading
results back), reasons and failure_classes (why a test failed), server_logs, report.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from .common import (
    DEFAULT_FILES,
    DEFAULT_LOGS,
    DEFAULT_OUTPUT,
    DEFAULT_RESULTS,
    DEFAULT_TIMEOUT,
    SERVERS,
)
from .compare import CompareRun, compare
from .pytest_run import check_tree, run_pytest
from .report import write_report
from .servers import aion_takes_flags
from .venv import ensure_venv

DEFAULT_FILE_WALL_LIMIT = 4 * 3600.0


def cmd_run(argv: list[str]) -> int:
    """`scripts/sdk-suite TREE ADDRESS ...`: the suite against a running server."""
    p = argparse.ArgumentParser(prog="sdk-suite", description="run the SDK suite against ADDRESS")
    p.add_argument("tree", type=Path)
    p.add_argument("address")
    p.add_argument("--junit", type=Path, default=DEFAULT_RESULTS / "junit.xml")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="per-test timeout (s)")
    ns, rest = p.parse_known_args(argv)
    tree = check_tree(ns.tree)
    python = ensure_venv()
    if not any(not a.startswith("-") and a.startswith("tests") for a in rest):
        rest = [*DEFAULT_FILES, *rest]
    return run_pytest(python, tree, ns.address, ns.junit.resolve(), ns.timeout, rest)


def cmd_compare(argv: list[str]) -> int:
    """`scripts/sdk-suite compare TREE ...`: fresh servers, one file at a time, then the report."""
    p = argparse.ArgumentParser(prog="sdk-suite compare")
    p.add_argument("tree", type=Path)
    p.add_argument("files", nargs="*")
    p.add_argument("--servers", default="reference,aion")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="per-test timeout (s)")
    p.add_argument("--aion-flags", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--logs", type=Path, default=DEFAULT_LOGS)
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--no-report", action="store_true")
    p.add_argument(
        "--file-wall-limit",
        type=float,
        default=DEFAULT_FILE_WALL_LIMIT,
        help="kill pytest if one file takes longer than this (s)",
    )
    ns = p.parse_args(argv)
    tree = check_tree(ns.tree)
    python = ensure_venv()
    files = ns.files or DEFAULT_FILES
    servers = [s.strip() for s in ns.servers.split(",") if s.strip()]
    for s in servers:
        if s not in SERVERS:
            sys.exit(f"sdk-suite: unknown server {s!r} (choose from {', '.join(SERVERS)})")
    for f in files:
        if not (tree / f).is_file():
            sys.exit(f"sdk-suite: {tree / f} does not exist")
    run = CompareRun(
        python=python,
        tree=tree,
        results=ns.results.resolve(),
        logs=ns.logs.resolve(),
        timeout=ns.timeout,
        aion_flags=aion_takes_flags(ns.aion_flags) if "aion" in servers else False,
        file_wall_limit=ns.file_wall_limit,
        stamp=datetime.now().strftime("%Y%m%d-%H%M%S"),
    )
    compare(run, servers, files)
    if not ns.no_report:
        write_report(run.results, ns.output.resolve())
    return 0


def cmd_report(argv: list[str]) -> int:
    """`scripts/sdk-suite report`: regenerate the report from results already recorded."""
    p = argparse.ArgumentParser(prog="sdk-suite report")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    ns = p.parse_args(argv)
    write_report(ns.results.resolve(), ns.output.resolve())
    return 0


def main(argv: list[str]) -> int:
    """Dispatch on the first argument: compare, report, venv, or (anything else) a run."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if argv[0] == "compare":
        return cmd_compare(argv[1:])
    if argv[0] == "report":
        return cmd_report(argv[1:])
    if argv[0] == "venv":
        print(ensure_venv())
        return 0
    return cmd_run(argv)
