"""Why a test failed, in one line, from what pytest recorded in the junit XML (the failure text,
the captured worker log, the sections the sdk_suite_hang plugin appends)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from .junit import Case

# Where test sources are looked up when a result does not name its tree (older results).
FALLBACK_TREE = Path("/tmp/sdk-python-1.31.0")


def one_line(s: str, limit: int = 220) -> str:
    """`s` with its whitespace collapsed, cut to `limit` characters."""
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def e_lines(text: str) -> list[list[str]]:
    """The `E   ...` lines of a pytest long representation, one list per exception in the chain."""
    blocks: list[list[str]] = []
    cur: list[str] = []
    for line in text.splitlines():
        if line.startswith("E   ") or line == "E":
            cur.append(line[4:] if len(line) > 4 else "")
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    return blocks


def exception_heads(text: str) -> list[str]:
    """First line of each exception in the chain, innermost (root cause) first."""
    heads = []
    for block in e_lines(text):
        for line in block:
            if re.match(
                r"^[\w.]+(Error|Exception|Failure|Failed|Timeout|Cancelled|Interrupt)\b|^[\w.]+: ",
                line.strip(),
            ) or line.strip().startswith("assert "):
                heads.append(line.strip())
                break
        else:
            if block and block[0].strip():
                heads.append(block[0].strip())
    return heads


def hang_location(case: Case) -> str:
    """For a timeout: where the test coroutine was waiting (from the sdk_suite_hang plugin)."""
    text = case.text
    k = text.find("SDK-SUITE-HANG")
    if k < 0:
        return ""
    frames = re.findall(r"^(/\S+?):(\d+) in (\S+)$", text[k:], re.M)
    if not frames:
        return ""
    in_tests = [f for f in frames if "/tests/" in f[0]]
    path, lineno, func = in_tests[-1] if in_tests else frames[0]
    src = ""
    with contextlib.suppress(OSError, IndexError):
        src = Path(path).read_text().splitlines()[int(lineno) - 1].strip()
    short = path[path.rfind("/tests/") + 1 :] if "/tests/" in path else path
    out = f"{short}:{lineno} in {func}" + (f" `{src}`" if src else "")
    last = frames[-1]
    if last != (path, lineno, func):
        lp = last[0]
        lp = lp[lp.rfind("/temporalio/") + 1 :] if "/temporalio/" in lp else lp.rsplit("/", 1)[-1]
        out += f" → {lp}:{last[1]} in {last[2]}"
    return out


GRPC_CODES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}  # fmt: skip


def main_text(case: Case) -> str:
    """The failure text without the sections the sdk_suite_hang plugin appends."""
    k = case.text.find("SDK-SUITE-")
    if k < 0:
        return case.text
    return case.text[: case.text.rfind("\n", 0, k)]


def plugin_section(case: Case, tag: str) -> list[str]:
    k = case.text.find(tag)
    if k < 0:
        return []
    out = []
    for line in case.text[k:].splitlines()[1:]:
        if line.startswith("-----") or "SDK-SUITE-" in line:
            break
        if line.strip():
            out.append(line.strip())
    return out


def source_line(tree: Path | None, rel: str, lineno: int) -> str:
    for base in [tree, FALLBACK_TREE]:
        if base is None:
            continue
        try:
            return (base / rel).read_text().splitlines()[lineno - 1].strip()
        except (OSError, IndexError):
            continue
    return ""


def test_location(case: Case, tree: Path | None) -> str:
    """`tests/x.py:N `source`` of the last frame in the suite's own code."""
    hits = re.findall(r"^(tests/[^\s:]+\.py):(\d+):", main_text(case), re.M)
    if not hits:
        return ""
    rel, n = hits[-1]
    src = source_line(tree, rel, int(n))
    return f"{rel}:{n}" + (f" `{one_line(src, 120)}`" if src else "")


def rpc_failure(case: Case) -> tuple[str, str, str] | None:
    """(RPC name, status name, message) if the test failed on an RPC error."""
    text = main_text(case)
    found = list(re.finditer(r"temporal_sdk_bridge\.RPCError: \((\d+), (['\"])(.*?)\2, b", text))
    if not found:
        return None
    m = found[-1]
    status = GRPC_CODES.get(int(m.group(1)), m.group(1))
    message = m.group(3)
    rpcs = re.findall(r"services_generated\.py:\d+: in (\w+)|\brpc = '(\w+)'", text[: m.start()])
    name = ""
    if rpcs:
        snake = rpcs[-1][0] or rpcs[-1][1]
        name = "".join(part.capitalize() for part in snake.split("_"))
    return name, status, message


def log_hint(case: Case) -> str:
    """A server error quoted in the captured worker log (WARNING/ERROR lines), if any."""
    for line in case.logs.splitlines():
        if re.search(r"\[\s*(WARNING|ERROR)\]", line) and re.search(
            r"status: \w+|Unimplemented|InvalidArgument|not supported|unsupported|Internal|NotFound|"
            r"FailedPrecondition|Failed to complete|failing workflow task|WorkflowTaskFailed",
            line,
        ):
            return one_line(re.sub(r"^\S+ \S+ \[\s*\w+\]\s*|^\S+ \[\s*\w+\]\s*", "", line), 300)
    return ""


def reason(case: Case, tree: Path | None = None) -> str:
    """One line saying why a test failed."""
    if case.outcome not in ("failed", "error"):
        return ""
    prefix = "" if case.outcome == "failed" else "(setup/teardown error) "
    msg = case.message
    if "Timeout (>" in msg:
        where = hang_location(case) or test_location(case, tree)
        hint = log_hint(case)
        return (
            prefix + "timeout: test still waiting after the per-test limit"
            + (f" at {where}" if where else "") + (f" — worker log: {hint}" if hint else "")
        )  # fmt: skip
    where = test_location(case, tree)
    at = f" (at {where})" if where else ""
    rpc = rpc_failure(case)
    if rpc:
        name, status, message = rpc
        return prefix + f"RPC {name or '?'} → {status}: {one_line(message, 200)}{at}"
    causes = plugin_section(case, "SDK-SUITE-CAUSE")
    if len(causes) > 1:
        names = [c.split(":", 1)[0].rsplit(".", 1)[-1] for c in causes]
        inner = causes[-1].split(":", 1)
        text = inner[1].strip() if len(inner) > 1 else inner[0]
        return prefix + f"{' ← '.join(names)}: {one_line(text, 240)}{at}"
    heads = exception_heads(case.text)
    head = heads[-1] if heads else (msg or "failed")
    return prefix + one_line(head, 240) + at


def normalize(s: str) -> str:
    s = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", s)
    s = re.sub(r"'[^']*-[0-9a-f]{6,}[^']*'", "'<id>'", s)
    s = re.sub(r"\b\d+(\.\d+)?\b", "N", s)
    return s
