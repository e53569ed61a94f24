"""Run the same bench against the reference Temporal dev server and Aion, one after the other.

Each server is started on free loopback ports, benchmarked with run.py (given the server's PID
so its CPU time is measured), then stopped by PID before the next one starts. Prints a markdown
table (and writes it to --output if given). Aion is skipped with a note if it does not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from run import WORKLOADS, WorkloadResult, fmt
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPORAL = Path(sys.executable).parent / "temporal"
NAMESPACE = "default"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
SCRAPE_INTERVAL_S = 1.0  # --metrics: Prometheus scrapes every 15 s by default; this is harsher


@dataclass
class Outcome:
    """What happened for one server: its results by workload, or why there are none."""

    server: str
    results: dict[str, WorkloadResult] | None = None
    problem: str | None = None
    load_before: float | None = None


def free_port(port_range: tuple[int, int] | None = None, taken: set[int] | None = None) -> int:
    """A loopback port that is free now: any (port 0), or the first free one in `port_range`."""
    candidates = [0] if port_range is None else range(port_range[0], port_range[1] + 1)
    for candidate in candidates:
        if taken is not None and candidate in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = s.getsockname()[1]
        if taken is not None:
            taken.add(port)
        return port
    raise RuntimeError(f"no free port in {port_range}")


async def wait_ready(proc: subprocess.Popen[bytes], address: str) -> None:
    """Poll until the server answers DescribeNamespace; raise if it exits or takes too long."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode}")
        try:
            client = await Client.connect(address, namespace=NAMESPACE)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=NAMESPACE)
            )
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {READY_TIMEOUT:.0f} s: {exc}") from exc
        await asyncio.sleep(0.5)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server by PID, SIGKILL it if it lingers."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def log_tail(path: Path, lines: int = 15) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()][-lines:]


def bench_one(
    name: str,
    argv: list[str],
    address: str,
    bench_args: list[str],
    log: Path,
    cwd: Path = ROOT,
    scrape_url: str | None = None,
) -> Outcome:
    """Start one server (in `cwd`), run run.py against it, stop it. With `scrape_url`, GET it
    every SCRAPE_INTERVAL_S while the bench runs, as Prometheus would."""
    print(f"== {name}: starting {' '.join(argv)}", file=sys.stderr)
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            asyncio.run(wait_ready(proc, address))
        except RuntimeError as exc:
            tail = log_tail(log)
            print("\n".join(tail), file=sys.stderr)
            last = f": {tail[-1]}" if tail else ""
            return Outcome(name, problem=f"server did not start ({exc}){last}")
        load_before = os.getloadavg()[0]
        cmd = [sys.executable, str(HERE / "run.py"), "--address", address]
        cmd += ["--server-pid", str(proc.pid), "--json", *bench_args]
        print(f"== {name}: pid {proc.pid}, {' '.join(cmd[1:])}", file=sys.stderr)
        stop_scraping = threading.Event()
        if scrape_url is not None:
            threading.Thread(target=scrape, args=(scrape_url, stop_scraping), daemon=True).start()
        try:
            done = subprocess.run(cmd, check=False, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        finally:
            stop_scraping.set()
        if done.returncode != 0:
            return Outcome(name, problem=f"run.py exited with code {done.returncode}")
        report = json.loads(done.stdout)
        results = {r["workload"]: WorkloadResult(**r) for r in report["results"]}
        return Outcome(name, results=results, load_before=load_before)
    finally:
        stop(proc)


def scrape(url: str, stop: threading.Event) -> None:
    """GET `url` every SCRAPE_INTERVAL_S until `stop` is set."""
    while not stop.wait(SCRAPE_INTERVAL_S):
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, Python {platform.python_version()}"


def markdown(outcomes: list[Outcome], reference: str, args: argparse.Namespace) -> str:
    """Render the outcomes as one markdown table plus notes."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Side-by-side bench, {when}; machine: {machine()}; reference: {reference}.",
        (
            f"Each workload: {args.workflows} workflows, {args.concurrency} in flight, "
            f"after {args.warmup} warm-up workflows."
        ),
        "",
        *_table(outcomes, args.workload),
    ]
    for o in outcomes:
        if o.problem:
            lines.append(f"- **{o.server}: skipped** — {o.problem}")
        else:
            lines.append(f"- {o.server}: 1-min load average before the run {o.load_before:.2f}")
    return "\n".join(lines) + "\n"


def _table(outcomes: list[Outcome], workloads: list[str]) -> list[str]:
    lines = [
        "| workload | server | ok/n | wf/s | p50 ms | p95 ms | p99 ms | server CPU ms/wf |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in workloads:
        for o in outcomes:
            r = (o.results or {}).get(workload)
            if r is None:
                lines.append(f"| {workload} | {o.server} | - | - | - | - | - | - |")
                continue
            cpu_ms = r.server_cpu_s_per_wf * 1000 if r.server_cpu_s_per_wf is not None else None
            lines.append(
                f"| {workload} | {o.server} | {r.completed}/{r.workflows} "
                f"| {fmt(r.workflows_per_s, 1)} | {fmt(r.p50_ms, 1)} | {fmt(r.p95_ms, 1)} "
                f"| {fmt(r.p99_ms, 1)} | {fmt(cpu_ms, 2)} |"
            )
    lines.append("")
    return lines


def median_table(rounds: list[list[Outcome]], workloads: list[str]) -> list[str]:
    """Each server's median over the rounds of wf/s and server CPU per workflow, with the
    range of the CPU figure."""
    lines = [
        f"Median of {len(rounds)} rounds (CPU range in brackets):",
        "",
        "| workload | server | wf/s | server CPU ms/wf |",
        "|---|---|---:|---:|",
    ]
    servers = list(dict.fromkeys(o.server for outcomes in rounds for o in outcomes))
    for workload in workloads:
        for server in servers:
            results = [
                r
                for outcomes in rounds
                for o in outcomes
                if o.server == server and (r := (o.results or {}).get(workload)) is not None
            ]
            cpu = [r.server_cpu_s_per_wf * 1000 for r in results if r.server_cpu_s_per_wf]
            rate = fmt(statistics.median(r.workflows_per_s for r in results), 1) if results else "-"
            spread = (
                f"{fmt(statistics.median(cpu), 2)} [{min(cpu):.2f}–{max(cpu):.2f}]" if cpu else "-"
            )
            lines.append(f"| {workload} | {server} | {rate} | {spread} |")
    lines.append("")
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("-n", "--workflows", type=int, default=200)
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("-o", "--output", type=Path, help="also write the markdown here")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also bench the Aion of another checkout (with its own .venv, e.g. from"
        " `git worktree add DIR COMMIT && DIR/scripts/bootstrap`), as server `aion-baseline`",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="also bench this Aion with a metrics port scraped every second, as server"
        " `aion-metrics` (metrics on against metrics off)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="bench the Aion servers this many times, alternating (the reference once)",
    )
    parser.add_argument(
        "--ports",
        type=port_range,
        metavar="LO-HI",
        help="take the servers' listening ports from this range (default: any free port)",
    )
    return parser.parse_args()


def port_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        bounds = (int(lo), int(hi))
    except ValueError:
        bounds = (0, -1)
    if not sep or not 0 < bounds[0] <= bounds[1] < 65536:
        raise argparse.ArgumentTypeError(f"expected LO-HI with 0 < LO <= HI < 65536, got {text!r}")
    return bounds


def main() -> None:
    args = parse_args()
    bench_args = ["--workload", *args.workload, "-n", str(args.workflows)]
    bench_args += ["-c", str(args.concurrency), "--warmup", str(args.warmup)]
    bench_args += ["--timeout", str(args.timeout)]
    reference = subprocess.run(
        [str(TEMPORAL), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()

    rounds: list[list[Outcome]] = []
    with tempfile.TemporaryDirectory(prefix="aion-bench-") as tmp:
        taken: set[int] = set()
        port = free_port(args.ports, taken)
        argv = [str(TEMPORAL), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
        argv += ["--port", str(port), "--ui-port", str(free_port(args.ports, taken))]
        if args.ports:  # otherwise the reference picks these itself
            argv += ["--http-port", str(free_port(args.ports, taken))]
            argv += ["--metrics-port", str(free_port(args.ports, taken))]
        argv += ["--log-level", "error"]
        reference_outcome = bench_one(
            "temporal", argv, f"127.0.0.1:{port}", bench_args, Path(tmp, "temporal.log")
        )
        aions = [("aion", Path(sys.executable), ROOT)]
        if args.metrics:
            aions.append(("aion-metrics", Path(sys.executable), ROOT))
        if args.baseline is not None:
            baseline = args.baseline.resolve()
            aions.insert(0, ("aion-baseline", baseline / ".venv/bin/python", baseline))
        for number in range(args.rounds):
            outcomes = [reference_outcome] if number == 0 else []
            for name, python, checkout in aions:
                port = free_port(args.ports, taken)
                argv = [str(python), "-m", "aion", "server", "start-dev", "--ip", "127.0.0.1"]
                argv += ["--port", str(port)]
                scrape_url = None
                if name == "aion-metrics":
                    metrics_port = free_port(args.ports, taken)
                    argv += ["--metrics-port", str(metrics_port)]
                    scrape_url = f"http://127.0.0.1:{metrics_port}/metrics"
                log = Path(tmp, f"{name}.log")
                outcomes.append(
                    bench_one(
                        name, argv, f"127.0.0.1:{port}", bench_args, log, checkout, scrape_url
                    )
                )
            rounds.append(outcomes)

    for outcomes in rounds:
        for o in outcomes:
            if o.problem:
                print(f"!! {o.server} skipped: {o.problem}", file=sys.stderr)
    table = markdown(rounds[0], reference, args)
    for number, outcomes in enumerate(rounds[1:], start=2):
        table += f"\nRound {number}:\n\n" + "\n".join(_table(outcomes, args.workload))
    if len(rounds) > 1:
        table += "\n" + "\n".join(median_table(rounds, args.workload))
    print(table)
    if args.output:
        args.output.write_text(table)


if __name__ == "__main__":
    main()
