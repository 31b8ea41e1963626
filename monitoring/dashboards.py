"""Generate the Grafana dashboards (JSON) from monitoring/dashboards/panels.yml.

panels.yml says what each dashboard shows; this module lays the panels out on
Grafana's 24-column grid and writes the JSON that Grafana imports (or
provisions from a folder).

    python -m monitoring.dashboards            # rewrite monitoring/dashboards/*.json
    python -m monitoring.dashboards --check    # exit 1 when a committed file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from monitoring import MONITORING_DIR

DASHBOARDS_DIR = MONITORING_DIR / "dashboards"
PANELS_FILE = DASHBOARDS_DIR / "panels.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Query(_Model):
    expr: str
    legend: str = ""


class Threshold(_Model):
    start: float | None = Field(alias="from")
    color: str


class Panel(_Model):
    title: str
    queries: list[Query] = Field(min_length=1)
    kind: Literal["timeseries", "stat"] = "timeseries"
    unit: str = "short"
    width: int = Field(default=12, ge=1, le=GRID_WIDTH)
    height: int = Field(default=8, ge=1)
    description: str = ""
    thresholds: list[Threshold] = []


class Dashboard(_Model):
    title: str
    description: str
    panels: list[Panel] = Field(min_length=1)
    tags: list[str] = ["shop"]


class DashboardSet(RootModel[dict[str, Dashboard]]):
    pass


def load_dashboards(path: Path = PANELS_FILE) -> dict[str, Dashboard]:
    with path.open(encoding="utf-8") as fh:
        return DashboardSet.model_validate(yaml.safe_load(fh)).root


def _layout(panels: list[Panel]) -> Iterator[tuple[Panel, dict[str, int]]]:
    x = y = row_height = 0
    for panel in panels:
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        yield panel, {"h": panel.height, "w": panel.width, "x": x, "y": y}
        x += panel.width
        row_height = max(row_height, panel.height)


def _panel_json(panel: Panel, panel_id: int, grid: dict[str, int]) -> dict[str, Any]:
    steps = [{"color": t.color, "value": t.start} for t in panel.thresholds] or [
        {"color": "green", "value": None}
    ]
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                "range": True,
            }
            for index, query in enumerate(panel.queries)
        ],
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
    }
    if panel.kind == "stat":
        body["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
        }
    else:
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return body


def dashboard_json(uid: str, dashboard: Dashboard) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": dashboard.tags,
        "timezone": "utc",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "panels": [
            _panel_json(panel, index, grid)
            for index, (panel, grid) in enumerate(_layout(dashboard.panels), start=1)
        ],
    }


def rendered(path: Path = PANELS_FILE) -> dict[Path, str]:
    """Output file -> its JSON text, for every dashboard in panels.yml."""
    return {
        DASHBOARDS_DIR / f"{uid}.json": json.dumps(
            dashboard_json(uid, dashboard), indent=2, ensure_ascii=False
        )
        + "\n"
        for uid, dashboard in load_dashboards(path).items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the Grafana dashboards.")
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if a file is stale"
    )
    args = parser.parse_args(argv)
    try:
        outputs = rendered()
    except (OSError, yaml.YAMLError, ValidationError) as error:
        print(f"error: cannot read {PANELS_FILE}: {error}", file=sys.stderr)
        return 2
    stale = []
    for path, text in outputs.items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        if args.check:
            stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"stale dashboards: {', '.join(stale)}: run `make dashboards`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
