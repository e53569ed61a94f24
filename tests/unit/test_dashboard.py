"""docs/dashboards/aion-grafana.json: valid JSON, a Grafana dashboard whose data source is a
variable, and PromQL that reads only metrics Aion emits."""

from __future__ import annotations

import re
from pathlib import Path

from aion import metrics
from tests.dashboards import exprs as dashboard_exprs
from tests.dashboards import family, load, metric_names, panels

SERVER = Path(metrics.__file__).resolve().parent.parent / "server.py"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def emitted() -> dict[str, str]:
    """The metric families Aion emits and their types: the catalog's, and the gauges the server
    registers when it starts (read at each scrape)."""
    types = {family.name: family.type for family in metrics.REGISTRY.collect()}
    for name in re.findall(r'read_gauge\(\s*"(\w+)"', SERVER.read_text()):
        types[name] = "gauge"
    return types


def series_exists(name: str, types: dict[str, str]) -> bool:
    """Whether Aion writes series `name`: a counter or gauge under its own name, a histogram as
    `_bucket`, `_sum` and `_count`."""
    if types.get(name) in ("counter", "gauge"):
        return True
    return name != family(name) and types.get(family(name)) == "histogram"


def test_series_names() -> None:
    types = {"service_latency": "histogram", "poll_success": "counter", "backlog_count": "gauge"}
    assert series_exists("service_latency_bucket", types)
    assert series_exists("backlog_count", types)
    assert not series_exists("service_latency", types)
    assert not series_exists("poll_success_count", types)
    assert not series_exists("poll_success_total", types)


def test_metric_names_parse() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (operation, le) (rate(service_latency_bucket{namespace=~"a|b"}'
        "[$__rate_interval])))"
        ' / on (operation) sum without (le) (increase(x_total{le="1"}[5m] offset 1m)) or vector(0)'
    )
    assert metric_names(expr) == {"service_latency_bucket", "x_total"}
    assert family("service_latency_bucket") == "service_latency"
    assert family("poll_success") == "poll_success"


def test_server_gauges_found() -> None:
    assert {
        "numshards_gauge",
        "approximate_backlog_count",
        "approximate_backlog_age_seconds",
        "aion_store_connections",
        "aion_open_workflow_executions",
    } <= emitted().keys()


def test_every_expression_reads_metrics_aion_emits() -> None:
    types = emitted()
    exprs = dashboard_exprs(load())
    assert len(exprs) >= 20
    unknown = {
        (title, name)
        for title, expr in exprs
        for name in metric_names(expr)
        if not series_exists(name, types)
    }
    assert not unknown
    read = {name for _, expr in exprs for name in metric_names(expr)}
    assert {
        "poll_success_sync",
        "service_latency_bucket",
        "persistence_latency_bucket",
        "workflow_success",
        "approximate_backlog_count",
        "aion_event_loop_lag_bucket",
    } <= read


def test_grafana_model() -> None:
    dashboard = load()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for name in ("namespace", "taskqueue"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
