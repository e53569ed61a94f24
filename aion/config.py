"""Server settings from a TOML file and command-line flags (`aion server start --config FILE`),
and the flag parsing that `start-dev` shares. See docs/operations.md for the keys."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aion.auth.config import auth_from_table, tls_from_table
from aion.cluster_metadata import ClusterConfig
from aion.common import limits
from aion.common.durations import GoError, parse_duration
from aion.frontend import quotas
from aion.matching import rates
from aion.server import SCHEDULE_RETENTION, ServerConfig
from aion.tracing import TracingConfig
from aion.tracing.config import EXPORTERS
from aion.tracing.logs import FORMATS as LOG_FORMATS
from aion.versioning import drainage
from aion.visibility.query import TYPE_NAMES
from aion.visibility.search_attributes import FIELDS_PER_TYPE, is_reserved, parse_type

LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "never")

# Keys a config file may hold, each with the TOML type its value must have.
FILE_KEYS: dict[str, type] = {
    "ip": str,
    "port": int,
    "metrics_port": int,
    "http_port": int,
    "broadcast_address": str,
    "dsn": str,
    "db_filename": str,
    "num_shards": int,
    "namespaces": list,
    "log_level": str,
    "search_attributes": dict,
    "dynamic_config": dict,
    "log_format": str,
    "tracing": dict,
    "auth": dict,
    "tls": dict,
    "cluster": dict,
}
# The keys of the `[cluster]` table (`aion.cluster_metadata.ClusterConfig`), with their types.
CLUSTER_KEYS: dict[str, type] = {
    "name": str,
    "enable_global_namespace": bool,
    "failover_version_increment": int,
    "initial_failover_version": int,
    "master_cluster_name": str,
    "address": str,
    "redirection_policy": str,
    "replication_secret_file": str,
    "remote_tls_ca_file": str,
}
# The keys of the `[tracing]` table (all strings).
TRACING_KEYS = ("exporter", "endpoint", "service_name")

_TOML_TYPES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}

# Dynamic config values that Aion honours, each with the type its value must have.
_DURATIONS = (SCHEDULE_RETENTION, drainage.REFRESH_INTERVAL, drainage.GRACE_PERIOD)
_HONOURED_DYNAMIC_CONFIG: dict[str, type] = {
    **{key: limits.value_type(key) for key in limits.KEYS},
    **dict.fromkeys(_DURATIONS, str),
}


class ConfigError(ValueError):
    """A setting is missing, unknown or invalid; the message is one line for the operator."""


@dataclass
class Settings:
    """What `aion server start` runs: the server's settings and the log level."""

    server: ServerConfig
    log_level: str
    log_format: str = "text"


def _type_name(value: Any) -> str:
    return _TOML_TYPES.get(type(value), "a date/time")


def _is(value: Any, expected: type) -> bool:
    """isinstance, except that a boolean is not an integer."""
    return isinstance(value, expected) and (expected is bool or not isinstance(value, bool))


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables to dotted keys: `limit.x = 1` unquoted in TOML means `"limit.x" = 1`."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _checked(key: str, value: Any) -> Any:
    """A file value of the right type (tables and arrays checked inside), else ConfigError."""
    expected = FILE_KEYS[key]
    if not _is(value, expected):
        raise ConfigError(f"{key} must be {_TOML_TYPES[expected]}, not {_type_name(value)}")
    if key == "namespaces":
        for item in value:
            if not _is(item, str):
                raise ConfigError(f"namespaces must hold strings, not {_type_name(item)}")
    elif key == "search_attributes":
        for name, type_name in value.items():
            if not _is(type_name, str):
                raise ConfigError(
                    f"search_attributes.{name} must be a type name string, not "
                    f"{_type_name(type_name)}"
                )
    elif key == "dynamic_config":
        return _flatten(value)
    elif key == "tracing":
        for name, item in value.items():
            if name not in TRACING_KEYS:
                raise ConfigError(
                    f"unknown key tracing.{name} (known keys: {', '.join(TRACING_KEYS)})"
                )
            if not _is(item, str):
                raise ConfigError(f"tracing.{name} must be a string, not {_type_name(item)}")
    elif key == "cluster":
        for name, item in value.items():
            if name not in CLUSTER_KEYS:
                raise ConfigError(
                    f"unknown key cluster.{name} (known keys: {', '.join(CLUSTER_KEYS)})"
                )
            if not _is(item, CLUSTER_KEYS[name]):
                raise ConfigError(
                    f"cluster.{name} must be {_TOML_TYPES[CLUSTER_KEYS[name]]}, "
                    f"not {_type_name(item)}"
                )
    return value


def cluster_config(table: Mapping[str, Any]) -> ClusterConfig:
    """This cluster's identity from the `[cluster]` table (or the flags that set its keys)."""
    cluster = ClusterConfig(**table)
    problem = cluster.problem()
    if problem is not None:
        raise ConfigError(f"cluster: {problem}")
    return cluster


def read_file(path: str) -> dict[str, Any]:
    """The settings in a TOML file, each of the type its key wants; ConfigError otherwise."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in FILE_KEYS:
            raise ConfigError(
                f"config file {path}: unknown key {json.dumps(key)} "
                f"(known keys: {', '.join(FILE_KEYS)})"
            )
        try:
            values[key] = _checked(key, value)
        except ConfigError as e:
            raise ConfigError(f"config file {path}: {e}") from None
    return values


def key_values(items: list[str], what: str) -> dict[str, str]:
    """`KEY=VALUE` strings to a dict (later keys win); ConfigError names the bad one."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"invalid {what}: missing expected '=' in {json.dumps(item)}")
        pairs[key] = value
    return pairs


def parse_dynamic_config(items: list[str]) -> dict[str, Any]:
    """`--dynamic-config-value KEY=VALUE` flags: VALUE must be JSON, as the reference wants."""
    values: dict[str, Any] = {}
    for key, text in key_values(items, "dynamic config values").items():
        try:
            values[key] = json.loads(text)
        except ValueError as e:
            raise ConfigError(
                f"invalid dynamic config values: invalid JSON value for key {json.dumps(key)}: {e}"
            ) from None
    return check_dynamic_config(values)


def check_dynamic_config(values: dict[str, Any]) -> dict[str, Any]:
    """`values` if each one Aion honours has the type it needs, else ConfigError."""
    for key, expected in _HONOURED_DYNAMIC_CONFIG.items():
        if key not in values or _is(values[key], expected):
            continue
        if not (expected is float and _is(values[key], int)):  # a float may be written 1
            raise ConfigError(
                f"invalid dynamic config values: {key} must be {_TOML_TYPES[expected]}, "
                f"not {_type_name(values[key])}"
            )
    checks = {
        **dict.fromkeys((*quotas.NAMESPACE_DEFAULTS, *quotas.PROCESS_DEFAULTS), quotas.check_value),
        **dict.fromkeys(rates.DISPATCH_DEFAULTS, rates.check_value),
    }
    for key, check in checks.items():
        problem = check(key, values[key]) if key in values else None
        if problem is not None:
            raise ConfigError(f"invalid dynamic config values: {key}: {problem}")
    for key in _DURATIONS:
        if key not in values:
            continue
        try:
            parse_duration(values[key])
        except GoError as e:
            raise ConfigError(f"invalid dynamic config values: {key}: {e}") from None
    return values


def search_attribute_types(types: Mapping[str, str]) -> dict[str, int]:
    """Custom search attributes, name to type name (any case), as IndexedValueTypes."""
    attributes: dict[str, int] = {}
    for name, type_name in types.items():
        sa_type = parse_type(type_name)
        if sa_type is None:
            raise ConfigError(f"invalid search attribute value type {json.dumps(type_name)}")
        if is_reserved(name):
            raise ConfigError(f"invalid search attributes: {name} is reserved by the system")
        attributes[name] = sa_type
    for sa_type, limit in FIELDS_PER_TYPE.items():
        if sum(1 for t in attributes.values() if t == sa_type) > limit:
            raise ConfigError(
                f"invalid search attributes: cannot have more than {limit} search attributes "
                f"of type {TYPE_NAMES[sa_type]}"
            )
    return attributes


def parse_search_attributes(items: list[str]) -> dict[str, int]:
    """`--search-attribute NAME=TYPE` flags; TYPE case-insensitively, as the reference."""
    return search_attribute_types(key_values(items, "search attributes"))


def _port(value: int, what: str) -> int:
    if not 1 <= value <= 65535:
        raise ConfigError(f"{what} must be between 1 and 65535, not {value}")
    return value


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _broadcast_address(address: str) -> str:
    """`HOST:PORT` (an IPv6 host in brackets), checked."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"broadcast_address must be HOST:PORT, not {json.dumps(address)}")
    _port(int(port), "the broadcast_address port")
    return address


def _merge(file_values: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """Flags (None: not given) over file values. A persistence flag replaces both of the file's
    persistence keys; search attribute and dynamic config flags add to the file's tables."""
    values = dict(file_values)
    given = {key: value for key, value in flags.items() if value is not None}
    if "dsn" in given or "db_filename" in given:
        values.pop("dsn", None)
        values.pop("db_filename", None)
    for table in ("search_attributes", "dynamic_config", "auth", "tls", "cluster"):
        if table in given:
            given[table] = {**values.get(table, {}), **given[table]}
    values.update(given)
    return values


def settings(file_values: Mapping[str, Any], flags: Mapping[str, Any]) -> Settings:
    """The settings of a production server: `flags` (keys as in a config file, None where not
    given) override `file_values` (from `read_file`); defaults fill the rest. ConfigError when
    a value is invalid or no database is set."""
    values = _merge(file_values, flags)
    unknown = set(values) - set(FILE_KEYS)
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    dsn: str | None = values.get("dsn")
    db_filename: str | None = values.get("db_filename")
    if dsn is not None and db_filename is not None:
        raise ConfigError("set only one of dsn (PostgreSQL) and db_filename (SQLite)")
    if not dsn and not db_filename:
        raise ConfigError(
            "a production server needs a database: give --dsn postgresql://USER@HOST:5432/DB or "
            "--db-filename PATH, or set dsn or db_filename in the config file "
            "(aion server start-dev runs in memory)"
        )
    ip: str = values.get("ip", "127.0.0.1")
    if not ip:
        raise ConfigError("ip must not be empty")
    port = _port(values.get("port", 7233), "port")
    metrics_port = values.get("metrics_port")
    if metrics_port is not None:
        _port(metrics_port, "metrics_port")
    http_port = values.get("http_port")
    if http_port is not None:
        _port(http_port, "http_port")
    num_shards: int = values.get("num_shards", 4)
    if num_shards < 1:
        raise ConfigError(f"num_shards must be at least 1, not {num_shards}")
    log_level = values.get("log_level", "info").lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError(
            f"log_level must be one of {', '.join(LOG_LEVELS)}, not {json.dumps(log_level)}"
        )
    log_format = values.get("log_format", "text").lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(
            f"log_format must be one of {', '.join(LOG_FORMATS)}, not {json.dumps(log_format)}"
        )
    tracing_values: dict[str, str] = values.get("tracing", {})
    exporter = tracing_values.get("exporter")
    if exporter is not None and exporter not in EXPORTERS:
        raise ConfigError(
            f"tracing.exporter must be one of {', '.join(EXPORTERS)}, not {json.dumps(exporter)}"
        )
    namespaces: list[str] = values.get("namespaces", ["default"])
    if "" in namespaces:
        raise ConfigError("a namespace name must not be empty")
    broadcast = values.get("broadcast_address")
    try:
        auth = auth_from_table(values["auth"]) if "auth" in values else None
        tls = tls_from_table(values["tls"]) if "tls" in values else None
    except ValueError as e:
        raise ConfigError(str(e)) from None
    server = ServerConfig(
        ip=ip,
        port=port,
        metrics_port=metrics_port,
        http_port=http_port,
        db_filename=db_filename,
        dsn=dsn,
        namespaces=list(dict.fromkeys(namespaces)),
        num_shards=num_shards,
        upgrade_schema=False,  # production: migrations are an explicit step (aion db migrate)
        search_attributes=search_attribute_types(values.get("search_attributes", {})),
        dynamic_config=check_dynamic_config(values.get("dynamic_config", {})),
        broadcast_address=_broadcast_address(broadcast)
        if broadcast is not None
        else _host_port(ip, port),
        tracing=TracingConfig(**tracing_values),
        auth=auth,
        tls=tls,
        cluster=cluster_config(values.get("cluster", {})),
    )
    return Settings(server=server, log_level=log_level, log_format=log_format)


def load(path: str | None, flags: Mapping[str, Any]) -> Settings:
    """`settings` from the config file at `path` (if any) and `flags`."""
    return settings(read_file(path) if path else {}, flags)
