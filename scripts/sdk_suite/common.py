"""Paths and defaults shared by the SDK suite tool's modules, and its progress log."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".sdk-suite"
DEFAULT_RESULTS = STATE / "results"
DEFAULT_LOGS = Path("/tmp/sdk-suite-logs")
DEFAULT_OUTPUT = ROOT / "docs" / "compatibility.md"
DEFAULT_FILES = [
    "tests/worker/test_workflow.py",
    "tests/worker/test_activity.py",
    "tests/test_client.py",
    "tests/worker/test_update_with_start.py",
]
SERVERS = ("reference", "aion")
DEFAULT_TIMEOUT = 120
"""Per-test timeout (s) handed to pytest-timeout."""

# Files that run under the suite's venv interpreter (a pytest plugin, the readiness probe), not
# under Aion's: they are on the suite's PYTHONPATH and must work on every Python it may use.
IN_SUITE_VENV = Path(__file__).resolve().parent / "in_suite_venv"


def log(msg: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[sdk-suite {datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
