"""The suite's own venv (.sdk-suite/venv): the interpreter it uses and the pinned test dependencies."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .common import STATE, log

VENV = STATE / "venv"

# The pins measured for tag 1.31.0 of the suite (see the tool's --help).
REQUIREMENTS = [
    "temporalio[opentelemetry,pydantic,grpc]==1.31.0",
    "pytest==9.1.1",
    "pytest-asyncio==0.21.2",
    "pytest-timeout~=2.2",
    "psutil>=5.9.3,<6",
    "cryptography>=46",
    "httpx>=0.28.1",
    "toml>=0.10.2,<0.11",
    "googleapis-common-protos>=1.75.0,<2",
]


def python_version(path: str) -> tuple[int, int, int] | None:
    """(major, minor, micro) of the interpreter at `path`, or None if it does not run."""
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor, micro = (int(x) for x in out.stdout.split())
    return major, minor, micro


def dotted(version: tuple[int, ...] | None) -> str:
    """`3.13.0` for (3, 13, 0); empty for None."""
    return ".".join(map(str, version or ()))


def find_python() -> str:
    """The interpreter for the suite's venv: $SDK_SUITE_PYTHON, else the newest Python 3.10+ found
    on PATH or under ~/.pyenv/versions. Newest first because CPython <= 3.12 can raise
    "SystemError: AST constructor recursion depth mismatch" when pytest parses the big test
    modules while the SDK's sandbox threads parse too (cpython#106905): on 3.11.7 that fails
    tests at random and once aborted a whole run with INTERNALERROR."""
    if os.environ.get("SDK_SUITE_PYTHON"):
        return os.environ["SDK_SUITE_PYTHON"]
    names = ("python3.14", "python3.13", "python3.12", "python3.11", "python3.10", "python3")
    candidates = [shutil.which(name) for name in names]
    candidates += [str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.*/bin/python3"))]
    best: tuple[tuple[int, int, int], str] | None = None
    for path in dict.fromkeys(c for c in candidates if c):
        v = python_version(path)
        if v and (3, 10) <= v < (3, 15) and (best is None or v > best[0]):
            best = (v, path)
    if best is None:
        sys.exit("sdk-suite: needs Python 3.10 or newer (set SDK_SUITE_PYTHON)")
    return best[1]


def ensure_venv() -> Path:
    """Create .sdk-suite/venv with the pinned test dependencies (once; again if the pins or the
    chosen interpreter change). Returns its interpreter."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".sdk-suite-installed"
    base = find_python()
    version = python_version(base)
    want = hashlib.sha256(("\n".join(REQUIREMENTS) + f"\n{version}").encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python
    STATE.mkdir(exist_ok=True)
    if python.exists() and python_version(str(python)) != version:
        log(f"recreating {VENV} with Python {dotted(version)}")
        shutil.rmtree(VENV)
    if not python.exists():
        log(f"creating {VENV} with {base}")
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    log("installing the suite's test dependencies")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--only-binary", "temporalio"]
    subprocess.run([*pip, *REQUIREMENTS], check=True)
    stamp.write_text(want + "\n")
    return python
