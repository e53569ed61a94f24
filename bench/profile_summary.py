"""Summarise py-spy speedscope profiles (bench/run.py --profile): where the server's CPU goes.

    .venv/bin/python bench/profile_summary.py DIR/one-activity-*.speedscope.json [--top 25]

Prints markdown: the share of sampled time (every thread of the process) by area of the code (inclusive: a sample counts for every
area on its stack, so the shares add up to more than 100 %), then the functions with the most
samples of their own (self time).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

# Areas, matched against a frame's file path; a sample counts once per area on its stack.
AREAS = [
    ("grpc (C core and aio glue)", ("grpc/", "grpc_")),
    ("protobuf (parse, serialize, copy)", ("google/protobuf",)),
    ("sqlite3 / asyncpg", ("sqlite3", "asyncpg")),
    ("asyncio event loop", ("asyncio/",)),
    ("aion.frontend", ("aion/frontend/",)),
    ("aion.history (engine, state, api, tasks)", ("aion/history/",)),
    ("aion.matching", ("aion/matching/",)),
    ("aion.persistence", ("aion/persistence/",)),
    ("aion.visibility", ("aion/visibility/",)),
    ("aion.metrics", ("aion/metrics/", "prometheus_client")),
    ("logging", ("logging/",)),
]


def load(path: Path) -> tuple[list[dict[str, str]], list[list[int]], list[float]]:
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    samples: list[list[int]] = []
    weights: list[float] = []
    for profile in data["profiles"]:
        samples += profile["samples"]
        weights += profile["weights"]
    return frames, samples, weights


def summarise(paths: list[Path], top: int) -> str:
    by_area: Counter[str] = Counter()
    by_self: Counter[str] = Counter()
    total = 0.0
    for path in paths:
        frames, samples, weights = load(path)
        for stack, weight in zip(samples, weights, strict=True):
            total += weight
            files = [frames[i].get("file", "") or "" for i in stack]
            for area, needles in AREAS:
                if any(needle in file for file in files for needle in needles):
                    by_area[area] += weight
            if stack:
                leaf = frames[stack[-1]]
                file = (leaf.get("file") or "").split("site-packages/")[-1].split("/aion/")[-1]
                by_self[f"{leaf['name']} ({file}:{leaf.get('line', '')})"] += weight
    if not total:
        return "no samples\n"
    lines = [f"{total:.1f} s sampled", "", "| area (inclusive) | share |", "|---|---:|"]
    lines += [f"| {area} | {100 * w / total:.1f} % |" for area, w in by_area.most_common()]
    lines += ["", "| function (self) | share |", "|---|---:|"]
    lines += [f"| `{name}` | {100 * w / total:.1f} % |" for name, w in by_self.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.files, args.top), end="")


if __name__ == "__main__":
    main()
