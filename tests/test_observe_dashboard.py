"""The Grafana dashboard in docs/deploy/ (issue 14): every query names only metrics the server exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from prometheus_client import Metric

from skillrun.observe.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "deploy" / "grafana-dashboard.json"
# PromQL words that look like metric names: functions, aggregations, modifiers.
_PROMQL_WORDS = {
    "sum", "rate", "irate", "increase", "histogram_quantile", "clamp_min", "count", "by", "without", "max", "min",
    "avg", "le", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset",
}


def exported_series() -> set[str]:
    """Every sample name the server's metrics can produce."""
    names: set[str] = set()
    family: Metric
    for family in Metrics("test").registry.collect():
        base = family.name
        if family.type == "counter":
            names |= {base + "_total", base + "_created"}
        elif family.type == "histogram":
            names |= {base + "_bucket", base + "_count", base + "_sum", base + "_created"}
        else:
            names.add(base)
    return names


def queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def metric_names(expr: str) -> set[str]:
    """Identifiers outside label matchers and strings that are not PromQL words or durations."""
    bare = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range selectors
    bare = re.sub(r"\bby \([^)]*\)", "", bare)  # grouping labels
    bare = re.sub(r"\b\d+(\.\d+)?(e-?\d+)?\b", "", bare)  # numbers (1e-9)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare))
    return {w for w in words if w not in _PROMQL_WORDS and not w.startswith("__")}


def test_every_dashboard_query_names_an_exported_metric() -> None:
    """Each panel query of docs/deploy/grafana-dashboard.json names at least one metric, and every
    metric it names is one the server exports (a renamed metric breaks this test, not the dashboard)."""
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_series()
    exprs = list(queries(dashboard))
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)
        used |= names
    # Every metric the issue names has a panel.
    bases = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
    for family in Metrics("test").registry.collect():
        assert family.name in bases, f"no panel for {family.name}"


def test_the_query_parser_finds_metric_names() -> None:
    """The check itself: a query over an unknown metric is caught, label names are not metrics."""
    assert metric_names('sum by (skill) (rate(skillrun_nope_total{status="x"}[5m]))') == {"skillrun_nope_total"}
    assert "skillrun_nope_total" not in exported_series()
