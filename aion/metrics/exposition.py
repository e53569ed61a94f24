"""Prometheus text exposition in the reference server's form: counters under their plain name
(no `_total`), histograms as `_bucket` / `_sum` / `_count` with `le` written as Go writes floats,
labels sorted by name (`le` last), label values with every character other than letters, digits and `_`
replaced by `_`."""

from __future__ import annotations

import math
import re

from prometheus_client import CollectorRegistry

_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def render(registry: CollectorRegistry) -> str:
    """The registry's metrics as Prometheus text."""
    lines: list[str] = []
    for family in registry.collect():
        name = family.name
        lines.append(f"# HELP {name} {family.documentation}")
        lines.append(f"# TYPE {name} {family.type}")
        for sample in family.samples:
            if family.type == "counter":
                if not sample.name.endswith("_total"):
                    continue  # the `_created` timestamps the reference does not have
                sample_name = name
            elif family.type == "histogram":
                if not sample.name.endswith(_HISTOGRAM_SUFFIXES):
                    continue
                sample_name = sample.name
            else:
                sample_name = sample.name
            labels = ",".join(
                f'{key}="{_label_value(key, value)}"'
                for key, value in sorted(sample.labels.items(), key=_label_order)
            )
            lines.append(f"{sample_name}{{{labels}}} {_number(sample.value)}")
    return "\n".join(lines) + "\n"


def _label_order(item: tuple[str, str]) -> tuple[bool, str]:
    return item[0] == "le", item[0]  # by name, a histogram's `le` last


def _label_value(key: str, value: str) -> str:
    if key == "le":
        return value if value == "+Inf" else _number(float(value))
    return _UNSAFE.sub("_", value)


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
