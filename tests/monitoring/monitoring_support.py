"""What the monitoring tests read: rule files, promtool test files, dashboards, runbooks,
and the metric names and job names a PromQL expression refers to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from monitoring import runbook_blocks
from monitoring.runbook_blocks import BLOCK_KINDS, FENCE  # noqa: F401 (re-exported)

REPO_DIR = Path(__file__).resolve().parents[2]
MONITORING_DIR = REPO_DIR / "monitoring"
RULES_DIR = MONITORING_DIR / "rules"
RULE_TESTS_DIR = RULES_DIR / "tests"
DASHBOARDS_DIR = MONITORING_DIR / "dashboards"
RUNBOOKS_DIR = REPO_DIR / "runbooks"
# Grafana fills these in before it sends a query; the tests do the same.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.rules.yml"))


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.test.yml"))


def all_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files()
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in all_rules() if "alert" in rule]


def alert_names() -> set[str]:
    return {rule["alert"] for rule in alerting_rules()}


def recorded_names() -> set[str]:
    return {rule["record"] for rule in all_rules() if "record" in rule}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every query of every dashboard JSON."""
    found = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        dashboard = load_yaml(path)  # JSON is YAML
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                found.append((path.name, panel["title"], target["expr"]))
    return found


def with_grafana_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


@dataclass(frozen=True)
class Selector:
    metric: str | None
    job: str | None


def selectors(expr: str) -> list[Selector]:
    """Every series selector in `expr`: its metric name and its `job="..."`, when given."""
    found: list[Selector] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            equal = {
                m.name: m.value
                for m in node.matchers.matchers
                if str(m.op) == str(promql_parser.MatchOp.Equal)
            }
            found.append(Selector(node.name or equal.get("__name__"), equal.get("job")))
        return True

    promql_parser.walk(promql_parser.parse(with_grafana_variables(expr)), visit)
    return found


def metric_names(expr: str) -> set[str]:
    return {s.metric for s in selectors(expr) if s.metric}


# --- runbooks -----------------------------------------------------------------------------

REQUIRED_SECTIONS = ("Meaning", "Impact", "Diagnosis", "Mitigation", "Escalation")
# Pages of runbooks/ that are not about one alert.
PROCESS_PAGES = {"README.md", "on-call.md"}


def runbook_pages() -> list[Path]:
    return sorted(p for p in RUNBOOKS_DIR.glob("*.md") if p.name not in PROCESS_PAGES)


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced block in a Markdown file."""
    return [(lang, body) for lang, _, body, _ in marked_blocks(path)]


def marked_blocks(path: Path) -> list[tuple[str, str, str, str]]:
    """(language, kind, body, section) of every fenced block (monitoring/runbook_blocks.py)."""
    return [(b.lang, b.kind, b.body, b.section) for b in runbook_blocks.marked_blocks(path)]


def promql_statements(body: str) -> list[str]:
    """A ```promql block holds one or more expressions separated by blank lines;
    `#` lines are comments."""
    lines = [line for line in body.splitlines() if not line.lstrip().startswith("#")]
    return [chunk.strip() for chunk in "\n".join(lines).split("\n\n") if chunk.strip()]
