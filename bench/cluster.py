"""One Aion process against two on one PostgreSQL database: same workloads, one sitting.

For each configuration (in each round: 1 process, then 2 processes) this creates a fresh
database, starts `aion server start --dsn ...` processes on free loopback ports (one after the
other, each waited for until it answers), waits until the shard leases match the live processes,
runs run.py against all of them (workflows round-robined over the addresses, the bench workers
spread over them, server CPU summed over every process, and the CPU of the database's PostgreSQL
backends measured too), stops the processes by PID and drops the database. Prints a markdown
table (and writes it to --output if given).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from run import WORKLOADS, WorkloadResult, fmt
from side_by_side import free_port, log_tail, machine, stop, wait_ready

from aion.cluster.membership import LEASE_S, rendezvous_owner

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BALANCE_TIMEOUT = 30.0
SETTLE_S = 2.0  # after the leases match: a heartbeat or two, so every process has seen them


@dataclass
class Outcome:
    """One configuration in one round: its results by workload, or why there are none."""

    processes: int
    round: int
    results: dict[str, WorkloadResult] | None = None
    problem: str | None = None
    load_before: float | None = None
    shards: list[int] = field(default_factory=list)  # shards held by each process, in start order
    log_notes: list[str] = field(default_factory=list)  # what the processes logged (warnings up)


async def admin(pg: str, statement: str) -> None:
    conn = await asyncpg.connect(f"{pg}/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def shard_split(dsn: str, addresses: list[str], num_shards: int) -> list[int] | None:
    """Shards held by each address when the leases match the live processes, else None."""
    conn = await asyncpg.connect(dsn)
    try:
        hosts = await conn.fetch(
            "SELECT host_id, address FROM hosts "
            "WHERE last_seen > now() - make_interval(secs => $1)",
            LEASE_S,
        )
        shards = await conn.fetch("SELECT shard_id, owner FROM shards")
    finally:
        await conn.close()
    address_of = {h["host_id"]: h["address"] for h in hosts}
    if sorted(address_of.values()) != sorted(addresses) or len(shards) != num_shards:
        return None
    ids = sorted(address_of)
    if any(s["owner"] != rendezvous_owner(ids, s["shard_id"]) for s in shards):
        return None
    return [sum(address_of[s["owner"]] == a for s in shards) for a in addresses]


async def wait_balanced(dsn: str, addresses: list[str], num_shards: int) -> list[int]:
    deadline = time.monotonic() + BALANCE_TIMEOUT
    while (split := await shard_split(dsn, addresses, num_shards)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"shard leases did not settle within {BALANCE_TIMEOUT:.0f} s")
        await asyncio.sleep(0.5)
    await asyncio.sleep(SETTLE_S)
    return split


def bench_config(
    processes: int, round_no: int, args: argparse.Namespace, bench_args: list[str], tmp: Path
) -> Outcome:
    """Fresh database, `processes` servers on it, run.py against all of them, tear down."""
    outcome = Outcome(processes, round_no)
    db = f"aion_bench_{uuid.uuid4().hex[:8]}_{processes}p"
    dsn = f"{args.pg}/{db}"
    asyncio.run(admin(args.pg, f'CREATE DATABASE "{db}"'))
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        addresses: list[str] = []
        for i in range(processes):
            port = free_port()
            address = f"127.0.0.1:{port}"
            argv = [sys.executable, "-m", "aion", "server", "start", "--dsn", dsn]
            argv += ["--port", str(port), "--num-shards", str(args.num_shards)]
            argv += ["--log-level", "warning"]
            log = tmp / f"round{round_no}-{processes}p-{i}.log"
            logs.append(log)
            print(f"== {processes}p: starting {' '.join(argv[1:])}", file=sys.stderr)
            with log.open("wb") as out:
                procs.append(subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT))
            try:
                asyncio.run(wait_ready(procs[-1], address))
            except RuntimeError as exc:
                tail = log_tail(log)
                print("\n".join(tail), file=sys.stderr)
                last = f": {tail[-1]}" if tail else ""
                outcome.problem = f"process {i + 1} did not start ({exc}){last}"
                return outcome
            addresses.append(address)
        try:
            outcome.shards = asyncio.run(wait_balanced(dsn, addresses, args.num_shards))
        except RuntimeError as exc:
            outcome.problem = str(exc)
            return outcome
        outcome.load_before = os.getloadavg()[0]
        pids = ",".join(str(p.pid) for p in procs)
        cmd = [sys.executable, str(HERE / "run.py"), "--address", ",".join(addresses)]
        cmd += ["--server-pid", pids, "--workers", str(args.workers), "--db-name", db]
        cmd += ["--json", *bench_args]
        if args.profile:
            cmd += ["--profile", str(args.profile / f"round{round_no}-{processes}p")]
        print(f"== {processes}p: shards {outcome.shards}, {' '.join(cmd[1:])}", file=sys.stderr)
        done = subprocess.run(cmd, check=False, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            outcome.problem = f"run.py exited with code {done.returncode}"
            return outcome
        report = json.loads(done.stdout)
        outcome.results = {r["workload"]: WorkloadResult(**r) for r in report["results"]}
        for i, proc in enumerate(procs):
            if proc.poll() is not None:
                outcome.problem = (
                    f"process {i + 1} exited with code {proc.returncode} during the run"
                )
        return outcome
    finally:
        for proc in procs:
            stop(proc)
        for i, log in enumerate(logs):
            logged = [line for line in log_tail(log, 10**6) if "Aion server listening" not in line]
            if logged:
                print(
                    f"-- {processes}p process {i + 1} logged:",
                    *logged[-15:],
                    sep="\n  ",
                    file=sys.stderr,
                )
                outcome.log_notes.append(
                    f"process {i + 1} logged {len(logged)} lines, the last: `{logged[-1]}`"
                )
        asyncio.run(admin(args.pg, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


def ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def cpu_split(r: WorkloadResult) -> str:
    """Each process's share of the server CPU, in start order (PIDs are kept in that order)."""
    if not r.server_cpu_s_by_pid or not r.server_cpu_s:
        return "-"
    return "/".join(f"{100 * c / r.server_cpu_s:.0f}" for c in r.server_cpu_s_by_pid.values())


def round_table(outcomes: list[Outcome], workloads: list[str]) -> list[str]:
    lines = [
        "| workload | processes | ok/n | wf/s | p50 ms | p99 ms | server CPU ms/wf "
        "| CPU split % | PostgreSQL CPU ms/wf |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in workloads:
        for o in outcomes:
            r = (o.results or {}).get(workload)
            if r is None:
                lines.append(f"| {workload} | {o.processes} | - | - | - | - | - | - | - |")
                continue
            lines.append(
                f"| {workload}{' (timed out)' if r.timed_out else ''} | {o.processes} "
                f"| {r.completed}/{r.workflows} | {fmt(r.workflows_per_s, 1)} "
                f"| {fmt(r.p50_ms, 1)} | {fmt(r.p99_ms, 1)} "
                f"| {fmt(ms(r.server_cpu_s_per_wf), 2)} | {cpu_split(r)} "
                f"| {fmt(ms(r.db_cpu_s_per_wf), 2)} |"
            )
    return lines


def spread(values: list[float | None], digits: int) -> str:
    """Median and range of one figure over the rounds: `median (min–max)`."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    lo, mid, hi = min(present), statistics.median(present), max(present)
    return f"{mid:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def spread_table(outcomes: list[Outcome], workloads: list[str], configs: list[int]) -> list[str]:
    lines = [
        "| workload | processes | ok/n (all rounds) | wf/s | p50 ms | p99 ms | server CPU ms/wf "
        "| PostgreSQL CPU ms/wf |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in workloads:
        for processes in configs:
            rs = [
                r
                for o in outcomes
                if o.processes == processes and (r := (o.results or {}).get(workload))
            ]
            ok = f"{sum(r.completed for r in rs)}/{sum(r.workflows for r in rs)}" if rs else "-"
            lines.append(
                f"| {workload} | {processes} | {ok} "
                f"| {spread([r.workflows_per_s for r in rs], 1)} "
                f"| {spread([r.p50_ms for r in rs], 1)} | {spread([r.p99_ms for r in rs], 1)} "
                f"| {spread([ms(r.server_cpu_s_per_wf) for r in rs], 2)} "
                f"| {spread([ms(r.db_cpu_s_per_wf) for r in rs], 2)} |"
            )
    return lines


def aion_commit() -> str:
    """The commit the servers run, noting uncommitted changes under aion/."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted changes" if git("status", "--porcelain", "aion") else "")


def markdown(
    outcomes: list[Outcome], args: argparse.Namespace, started: datetime, configs: list[int]
) -> str:
    when = f"{started:%Y-%m-%d %H:%M}–{datetime.now(UTC):%H:%M} UTC"
    lines = [
        f"Cluster bench, {when}; machine: {machine()}; Aion at {aion_commit()}; "
        f"PostgreSQL at {args.pg}.",
        (
            f"Each workload: {args.workflows} workflows, {args.concurrency} in flight, after "
            f"{args.warmup} warm-up workflows; {args.workers} bench worker processes; "
            f"{args.num_shards} shards; a fresh database per configuration and round."
        ),
        "",
    ]
    for round_no in range(1, args.rounds + 1):
        in_round = [o for o in outcomes if o.round == round_no]
        if args.rounds > 1:
            lines += [f"Round {round_no}:", ""]
        lines += round_table(in_round, args.workload)
        lines.append("")
        for o in in_round:
            if o.problem:
                lines.append(f"- **{o.processes} process(es): {o.problem}**")
            else:
                shards = "+".join(map(str, o.shards))
                lines.append(
                    f"- {o.processes} process(es): shards {shards}; "
                    f"1-min load average before the run {o.load_before:.2f}"
                )
            lines += [f"- {o.processes} process(es): {note}" for note in o.log_notes]
        lines.append("")
    if args.rounds > 1:
        lines += [f"Over the {args.rounds} rounds, median (min–max):", ""]
        lines += spread_table(outcomes, args.workload, configs)
        lines.append("")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("-n", "--workflows", type=int, default=200)
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="bench worker processes in every configuration, spread over the processes",
    )
    parser.add_argument("--num-shards", type=int, default=16)
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat both configurations, alternating"
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="configurations, as process counts (default: 1 2)",
    )
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server, without a database; bench databases are created and dropped",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy every server process (run.py --profile) into DIR/roundR-Pp/",
    )
    parser.add_argument("-o", "--output", type=Path, help="also write the markdown here")
    args = parser.parse_args()
    if min(args.workers, args.num_shards, args.rounds, *args.processes) < 1:
        parser.error("--workers, --num-shards, --rounds and --processes must be >= 1")
    return args


def main() -> None:
    args = parse_args()
    started = datetime.now(UTC)
    bench_args = ["--workload", *args.workload, "-n", str(args.workflows)]
    bench_args += ["-c", str(args.concurrency), "--warmup", str(args.warmup)]
    bench_args += ["--timeout", str(args.timeout)]
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="aion-cluster-bench-") as tmp:
        for round_no in range(1, args.rounds + 1):
            for processes in args.processes:
                outcome = bench_config(processes, round_no, args, bench_args, Path(tmp))
                if outcome.problem:
                    print(f"!! {processes}p round {round_no}: {outcome.problem}", file=sys.stderr)
                outcomes.append(outcome)
    table = markdown(outcomes, args, started, args.processes)
    print(table)
    if args.output:
        args.output.write_text(table)


if __name__ == "__main__":
    main()
