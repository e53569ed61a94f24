"""Reading a compare run's results back: the junit XML pytest wrote and the meta.json beside it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .common import SERVERS

INTERNAL_ERROR = "<pytest INTERNALERROR>"


@dataclass
class Case:
    """One test's outcome on one server."""

    module: str
    name: str
    outcome: str  # passed | failed | error | skipped
    seconds: float = 0.0
    message: str = ""
    text: str = ""
    logs: str = ""


@dataclass
class FileResult:
    """One test file's run on one server: what compare recorded (meta) and the cases."""

    server: str
    file: str
    meta: dict[str, object] = field(default_factory=dict)
    cases: dict[str, Case] = field(default_factory=dict)  # by test id

    def counts(self) -> tuple[int, int, int]:
        """(passed, failed, skipped); an error counts as a failure."""
        c = Counter("failed" if x.outcome == "error" else x.outcome for x in self.cases.values())
        return c["passed"], c["failed"], c["skipped"]


def read_junit(path: Path, test_file: str) -> dict[str, Case]:
    """The cases of a junit XML written for `test_file`, by test id (`Class::test` or `test`)."""
    cases: dict[str, Case] = {}
    root = ET.parse(path).getroot()
    module = test_file
    # classname is tests.worker.test_workflow or tests.worker.test_workflow.TestClass
    mod_dotted = test_file.removesuffix(".py").replace("/", ".")
    for tc in root.iter("testcase"):
        classname = tc.get("classname", "")
        if not tc.get("name"):
            continue
        if classname == "pytest" and tc.get("name") == "internal":
            message = "pytest aborted the run (INTERNALERROR)"
            cases[INTERNAL_ERROR] = Case(module, INTERNAL_ERROR, "error", message=message)
            continue
        cls = classname[len(mod_dotted) + 1 :] if classname.startswith(mod_dotted + ".") else ""
        name = f"{cls}::{tc.get('name', '')}" if cls else tc.get("name", "")
        case = Case(module, name, "passed", float(tc.get("time") or 0))
        for child in tc:
            tag = child.tag
            if tag in ("failure", "error"):
                # a teardown error after a failure: keep the first (the failure)
                if case.outcome in ("failed", "error"):
                    continue
                case.outcome = "failed" if tag == "failure" else "error"
                case.message = child.get("message", "") or ""
                case.text = child.text or ""
            elif tag == "skipped":
                if case.outcome == "passed":
                    case.outcome = "skipped"
                    case.message = child.get("message", "") or ""
            elif tag in ("system-out", "system-err"):
                case.logs += child.text or ""
        # a test that passed but errored in teardown appears twice under the same name
        prev = cases.get(name)
        if prev and prev.outcome in ("failed", "error"):
            continue
        cases[name] = case
    return cases


def load_results(results: Path) -> dict[str, dict[str, FileResult]]:
    """Everything in a results directory: server -> test file -> FileResult."""
    out: dict[str, dict[str, FileResult]] = defaultdict(dict)
    for server in SERVERS:
        d = results / server
        if not d.is_dir():
            continue
        for meta_path in sorted(d.glob("*.meta.json")):
            meta = json.loads(meta_path.read_text())
            fr = FileResult(server, str(meta["file"]), meta)
            junit = meta_path.with_name(meta_path.name.removesuffix(".meta.json") + ".xml")
            if junit.exists():
                try:
                    fr.cases = read_junit(junit, fr.file)
                except ET.ParseError as exc:
                    fr.meta["problem"] = f"unreadable junit XML: {exc}"
            elif "problem" not in meta:
                fr.meta["problem"] = f"no junit XML (pytest exit {meta.get('pytest_exit')})"
            out[server][fr.file] = fr
    return out
