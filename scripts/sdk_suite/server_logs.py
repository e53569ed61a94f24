"""Python tracebacks in a server's log (Aion logs one for each error an RPC raised)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .common import ROOT
from .reasons import one_line

# A line that starts a new log record, which ends the exception text of a traceback.
LOG_RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d|^\[|^INFO|^WARNING|^ERROR|^DEBUG")
FRAME = re.compile(r'File "(.*)", line (\d+), in (\S+)')


@dataclass
class Traceback:
    """One distinct traceback: its summary line, its full text (first seen) and how often."""

    summary: str
    text: str
    count: int


def _is_frame_line(line: str) -> bool:
    return line.startswith(" ") or line.startswith("Traceback")


def _traceback_end(lines: list[str], start: int) -> int:
    """Index after the traceback starting at lines[start]: its frames, the exception line(s), and
    the tracebacks chained to it."""
    j = start + 1
    while j < len(lines) and _is_frame_line(lines[j]):
        j += 1
    while j < len(lines) and lines[j] and not LOG_RECORD_START.match(lines[j]):
        j += 1
        if j < len(lines) and lines[j].startswith("Traceback"):
            while j < len(lines) and _is_frame_line(lines[j]):
                j += 1
    return j


def _last_frame(block: list[str]) -> str:
    """`path:line in function` of the innermost frame, the path relative to site-packages or to
    the repository."""
    frames = [ln.strip() for ln in block if ln.strip().startswith("File ")]
    last_frame = frames[-1] if frames else ""
    m = FRAME.match(last_frame)
    if not m:
        return last_frame
    path = m.group(1)
    for marker in ("/site-packages/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{m.group(2)} in {m.group(3)}"


def server_tracebacks(log_path: Path) -> list[Traceback]:
    """Distinct Python tracebacks in a server log, in order of first appearance."""
    if not log_path.exists():
        return []
    lines = log_path.read_text(errors="replace").splitlines()
    found: dict[str, Traceback] = {}
    i = 0
    while i < len(lines):
        if not lines[i].startswith("Traceback (most recent call last)"):
            i += 1
            continue
        j = _traceback_end(lines, i)
        block = lines[max(0, i - 1) : j]  # with the log line that announced it
        exc = next((ln for ln in reversed(block) if ln and not ln.startswith(" ")), "?")
        last_frame = _last_frame(block)
        key = re.sub(r"\d+", "N", exc)[:150] + " @ " + last_frame
        if key in found:
            found[key].count += 1
        else:
            summary = f"{one_line(exc, 200)} (at {last_frame})"
            found[key] = Traceback(summary, "\n".join(block), 1)
        i = j
    return list(found.values())
