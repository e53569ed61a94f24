"""Run the same bench against the reference Temporal dev server and Aion, one after the other.

Servers (--servers, default all): the reference on a SQLite file in its default mode
(`temporal-file`), on a SQLite file in WAL mode with synchronous=normal (`temporal-wal`) and in
memory (`temporal-memory`); Aion on a SQLite file (`aion-file`) and in memory (`aion-memory`).
Each server is started on free loopback ports (and a fresh database file), benchmarked with
run.py (given the server's PID so its CPU time is measured), then stopped by PID before the next
one starts. Prints markdown tables, with Aion against the reference in WAL mode (and writes them
to --output if given). A server that does not start is skipped with a note.
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

from run import WORKLOADS, WorkloadResult, core_percent, fmt, ms
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPORAL = Path(sys.executable).parent / "temporal"
NAMESPACE = "default"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
SCRAPE_INTERVAL_S = 1.0  # --metrics: Prometheus scrapes every 15 s by default; this is harsher

# The reference's storage modes: extra start-dev arguments, the database file's place marked
# by DB (None: in memory, no --db-filename).
REFERENCE_MODES: dict[str, list[str] | None] = {
    "file": ["--db-filename", "DB"],
    "wal": ["--db-filename", "DB"]
    + ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"],
    "memory": None,
}
AION_MODES: dict[str, list[str] | None] = {"file": ["--db-filename", "DB"], "memory": None}
SERVERS = [f"temporal-{m}" for m in REFERENCE_MODES] + [f"aion-{m}" for m in AION_MODES]
RATIO_REFERENCE = "temporal-wal"  # the reference's best durable mode: what Aion is held to
TARGET_THROUGHPUT = 4.0  # issue 15: Aion on a file >= 4x the reference WAL's wf/s
TARGET_CPU = 0.25  # and <= 1/4 of its server CPU per workflow


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
    lines += [f"- {line}" for line in load_notes(outcomes)]
    return "\n".join(lines) + "\n"


def load_notes(outcomes: list[Outcome]) -> list[str]:
    return [
        f"**{o.server}: skipped** — {o.problem}"
        if o.problem
        else f"{o.server}: 1-min load average before the run {o.load_before:.2f}"
        for o in outcomes
    ]


def _table(outcomes: list[Outcome], workloads: list[str]) -> list[str]:
    lines = [
        "| workload | server | ok/n | wf/s | p50 ms | p95 ms | p99 ms | server CPU ms/wf "
        "| worker CPU ms/wf | client CPU ms/wf | worker / client core % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in workloads:
        for o in outcomes:
            r = (o.results or {}).get(workload)
            if r is None:
                lines.append(f"| {workload} | {o.server} |" + " - |" * 9)
                continue
            lines.append(
                f"| {workload} | {o.server} | {r.completed}/{r.workflows} "
                f"| {fmt(r.workflows_per_s, 1)} | {fmt(r.p50_ms, 1)} | {fmt(r.p95_ms, 1)} "
                f"| {fmt(r.p99_ms, 1)} | {fmt(ms(r.server_cpu_s_per_wf), 2)} "
                f"| {fmt(ms(r.worker_cpu_s_per_wf), 2)} | {fmt(ms(r.client_cpu_s_per_wf), 2)} "
                f"| {bench_cores(r)} |"
            )
    lines.append("")
    return lines


def bench_cores(r: WorkloadResult) -> str:
    """The bench worker's and client's CPU over the batch, as % of one core: near 100 means
    that process, not the server, bounded the throughput."""
    worker, client = core_percent(r.worker_cpu_s, r), core_percent(r.client_cpu_s, r)
    return f"{fmt(worker, 0)} / {fmt(client, 0)}"


def _results(rounds: list[list[Outcome]], server: str, workload: str) -> list[WorkloadResult]:
    return [
        r
        for outcomes in rounds
        for o in outcomes
        if o.server == server and (r := (o.results or {}).get(workload)) is not None
    ]


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio_table(rounds: list[list[Outcome]], workloads: list[str]) -> list[str]:
    """Each Aion server against the reference in WAL mode (medians over the rounds): the
    throughput ratio (target >= 4x) and the server CPU per workflow ratio (target <= 1/4), with
    Aion's p50 and how busy the bench's worker and client kept their cores during Aion's run."""
    servers = list(dict.fromkeys(o.server for outcomes in rounds for o in outcomes))
    aions = [s for s in servers if s.startswith("aion")]
    if RATIO_REFERENCE not in servers or not aions:
        return []
    median_note = " (medians over the rounds)" if len(rounds) > 1 else ""
    lines = [
        f"Aion against the reference in WAL mode (`{RATIO_REFERENCE}`){median_note}; issue 15's"
        f" targets: wf/s ratio >= {TARGET_THROUGHPUT:g}, CPU ratio <= {TARGET_CPU:g}:",
        "",
        "| workload | Aion | ref WAL wf/s | Aion wf/s | wf/s ratio | ref WAL CPU ms/wf "
        "| Aion CPU ms/wf | CPU ratio | Aion p50 ms | worker / client core % (Aion run) "
        "| targets met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for workload in workloads:
        ref = _results(rounds, RATIO_REFERENCE, workload)
        ref_rate = _median([r.workflows_per_s for r in ref])
        ref_cpu = _median([ms(r.server_cpu_s_per_wf) for r in ref])
        for aion in aions:
            mine = _results(rounds, aion, workload)
            rate = _median([r.workflows_per_s for r in mine])
            cpu = _median([ms(r.server_cpu_s_per_wf) for r in mine])
            p50 = _median([r.p50_ms for r in mine])
            worker = _median([core_percent(r.worker_cpu_s, r) for r in mine])
            client = _median([core_percent(r.client_cpu_s, r) for r in mine])
            rate_ratio = rate / ref_rate if rate is not None and ref_rate else None
            cpu_ratio = cpu / ref_cpu if cpu is not None and ref_cpu else None
            met = [
                name
                for name, ok in (
                    ("wf/s", rate_ratio is not None and rate_ratio >= TARGET_THROUGHPUT),
                    ("CPU", cpu_ratio is not None and cpu_ratio <= TARGET_CPU),
                )
                if ok
            ]
            lines.append(
                f"| {workload} | {aion} | {fmt(ref_rate, 1)} | {fmt(rate, 1)} "
                f"| {fmt(rate_ratio, 2)}× | {fmt(ref_cpu, 2)} | {fmt(cpu, 2)} "
                f"| {fmt(cpu_ratio, 2)} | {fmt(p50, 1)} | {fmt(worker, 0)} / {fmt(client, 0)} "
                f"| {', '.join(met) or 'neither'} |"
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
            results = _results(rounds, server, workload)
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
        "--servers",
        nargs="+",
        choices=SERVERS,
        default=SERVERS,
        help="servers to bench, each on fresh storage (default: all, in this order):"
        " the reference on a SQLite file (default journal), in WAL mode with synchronous=normal"
        " and in memory; Aion on a SQLite file and in memory",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also bench the Aion of another checkout (with its own .venv, e.g. from"
        " `git worktree add DIR COMMIT && DIR/scripts/bootstrap`), as `aion-baseline-MODE` for"
        " each selected aion-MODE",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="also bench this Aion with a metrics port scraped every second, as"
        " `aion-metrics-MODE` for each selected aion-MODE (metrics on against metrics off)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="bench the Aion servers this many times, alternating, every other round in"
        " reverse order (the reference once)",
    )
    parser.add_argument(
        "--ports",
        type=port_range,
        metavar="LO-HI",
        help="take the servers' listening ports from this range (default: any free port)",
    )
    args = parser.parse_args()
    args.servers = [s for s in SERVERS if s in args.servers]  # in the canonical order
    if (args.baseline or args.metrics) and not any(s.startswith("aion-") for s in args.servers):
        parser.error("--baseline and --metrics need an aion-* server in --servers")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def port_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        bounds = (int(lo), int(hi))
    except ValueError:
        bounds = (0, -1)
    if not sep or not 0 < bounds[0] <= bounds[1] < 65536:
        raise argparse.ArgumentTypeError(f"expected LO-HI with 0 < LO <= HI < 65536, got {text!r}")
    return bounds


def reference_argv(port: int, ports: tuple[int, int] | None, taken: set[int]) -> list[str]:
    argv = [str(TEMPORAL), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
    argv += ["--port", str(port), "--ui-port", str(free_port(ports, taken))]
    if ports:  # otherwise the reference picks these itself
        argv += ["--http-port", str(free_port(ports, taken))]
        argv += ["--metrics-port", str(free_port(ports, taken))]
    return argv + ["--log-level", "error"]


def with_db(argv: list[str], mode_args: list[str] | None, db: Path) -> list[str]:
    """`argv` plus a storage mode's arguments, its database file (fresh) being `db`."""
    if mode_args is None:
        return argv
    db.unlink(missing_ok=True)
    return argv + [str(db) if a == "DB" else a for a in mode_args]


def aion_variants(args: argparse.Namespace) -> list[tuple[str, str, Path, Path]]:
    """(server name, storage mode, python, checkout) of each Aion server to bench, in order:
    for each selected mode, the --baseline checkout's, this checkout's, then with --metrics."""
    variants = []
    for server in args.servers:
        if not server.startswith("aion-"):
            continue
        mode = server.removeprefix("aion-")
        if args.baseline is not None:
            baseline = args.baseline.resolve()
            variants.append(
                (f"aion-baseline-{mode}", mode, baseline / ".venv/bin/python", baseline)
            )
        variants.append((server, mode, Path(sys.executable), ROOT))
        if args.metrics:
            variants.append((f"aion-metrics-{mode}", mode, Path(sys.executable), ROOT))
    return variants


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
        reference_outcomes = []
        for server in args.servers:
            if not server.startswith("temporal-"):
                continue
            mode = server.removeprefix("temporal-")
            port = free_port(args.ports, taken)
            argv = reference_argv(port, args.ports, taken)
            argv = with_db(argv, REFERENCE_MODES[mode], Path(tmp, f"{server}.db"))
            log = Path(tmp, f"{server}.log")
            reference_outcomes.append(bench_one(server, argv, f"127.0.0.1:{port}", bench_args, log))
        for number in range(args.rounds):
            outcomes = list(reference_outcomes) if number == 0 else []
            variants = aion_variants(args)
            if number % 2:  # every other round in reverse: no server always runs second
                variants.reverse()
            for name, mode, python, checkout in variants:
                port = free_port(args.ports, taken)
                argv = [str(python), "-m", "aion", "server", "start-dev", "--headless"]
                argv += ["--ip", "127.0.0.1", "--port", str(port)]
                argv = with_db(argv, AION_MODES[mode], Path(tmp, f"{name}-{number}.db"))
                scrape_url = None
                if name.startswith("aion-metrics"):
                    metrics_port = free_port(args.ports, taken)
                    argv += ["--metrics-port", str(metrics_port)]
                    scrape_url = f"http://127.0.0.1:{metrics_port}/metrics"
                log = Path(tmp, f"{name}-{number}.log")
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
        table += "".join(f"- {line}\n" for line in load_notes(outcomes))
    if len(rounds) > 1:
        table += "\n" + "\n".join(median_table(rounds, args.workload))
    ratios = ratio_table(rounds, args.workload)
    if ratios:
        table += "\n" + "\n".join(ratios)
    print(table)
    if args.output:
        args.output.write_text(table)


if __name__ == "__main__":
    main()
