"""Reading a server's Prometheus text (`GET /metrics`): samples, and each metric's type and
label names."""

from __future__ import annotations

import re
from collections import defaultdict

import aiohttp

SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')
Sample = tuple[str, dict[str, str], float]


async def scrape_text(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.text()


def samples(text: str) -> list[Sample]:
    found = []
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, line
        found.append((match[1], dict(LABEL.findall(match[2] or "")), float(match[3])))
    return found


async def scrape(port: int) -> list[Sample]:
    return samples(await scrape_text(port))


def shapes(text: str) -> dict[str, tuple[str, set[frozenset[str]]]]:
    """Each metric family's type and the label-name sets its samples carry (`le` left out)."""
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
    labels: dict[str, set[frozenset[str]]] = defaultdict(set)
    for name, sample_labels, _ in samples(text):
        family = name
        if name not in types:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
        labels[family].add(frozenset(k for k in sample_labels if k != "le"))
    return {name: (types.get(name, "untyped"), labels[name]) for name in labels}
