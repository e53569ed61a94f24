"""Whether tracing is on, and how: the config file's `[tracing]` table under `OTEL_*`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

EXPORTERS = ("otlp", "console", "none")


class TracingError(ValueError):
    """The tracing settings ask for what Aion cannot do; the message is one line."""


@dataclass(frozen=True)
class TracingConfig:
    """The config file's `[tracing]` table; every `OTEL_*` variable that is set wins over it."""

    exporter: str | None = None
    """`otlp` (OTLP over gRPC), `console` (spans as JSON on stdout) or `none`; unset: `otlp`
    when an endpoint is set, else `none` (tracing off)."""
    endpoint: str | None = None
    """The OTLP collector, e.g. `http://127.0.0.1:4317` (`http`: no TLS)."""
    service_name: str = "aion"
    """The `service.name` resource attribute."""


@dataclass(frozen=True)
class Settings:
    """What tracing runs with, once on."""

    exporter: str
    endpoint: str | None
    """None: the exporter reads `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` or its default."""
    service_name: str | None
    """None: `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`) names the service."""


def settings(config: TracingConfig, environ: Mapping[str, str] = os.environ) -> Settings | None:
    """The tracing settings of `config` under the `OTEL_*` variables of `environ`; None: off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    env_endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or config.exporter
    if not exporter:
        exporter = "otlp" if env_endpoint or config.endpoint else "none"
    if exporter == "none":
        return None
    if exporter not in EXPORTERS:
        raise TracingError(
            f"tracing exporter must be one of {', '.join(EXPORTERS)}, not {exporter} (OTEL_TRACES_EXPORTER)"
        )
    named = "OTEL_SERVICE_NAME" in environ or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    return Settings(
        exporter=exporter,
        endpoint=None if env_endpoint else config.endpoint,
        service_name=None if named else config.service_name,
    )
