"""Generate SLO recording rules and multi-window, multi-burn-rate alerts from slos.yml.

The alerting scheme is the one of the SRE Workbook (chapter "Alerting on SLOs"),
as Sloth and Pyrra implement it: an alert fires when the error budget burns
faster than a factor over a long window AND over a short window (the short
window makes the alert reset quickly once the problem is gone).

The selectors of slos.yml use the placeholders of monitoring/config.yml
(`[[ shop_selector ]]`), which also gives the runbook link. Run as a module (what
`make rules` does), this writes every rule file, this one included:

    python -m monitoring.slo_rules            # = python -m monitoring.render_rules
    python -m monitoring.slo_rules --check    # exit 1 when a committed rule file is stale

`main()` writes or checks slo.rules.yml alone (`--slos`, `--output`, `--config`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitoring import MONITORING_DIR, RULES_DIR
from monitoring import config as monitoring_config
from monitoring.config import MonitoringConfig

SLOS_FILE = MONITORING_DIR / "slos.yml"
OUTPUT_FILE = RULES_DIR / "slo.rules.yml"
TEAM = "shop"
# Every window a burn-rate condition or a dashboard reads, plus the SLO window itself.
RATE_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


@dataclass(frozen=True)
class BurnCondition:
    factor: float
    long_window: str
    short_window: str


@dataclass(frozen=True)
class BurnAlert:
    suffix: str
    severity: Literal["page", "ticket"]
    for_: str
    conditions: tuple[BurnCondition, ...]


BURN_ALERTS = (
    BurnAlert(
        "FastBurn",
        "page",
        "2m",
        (BurnCondition(14.4, "1h", "5m"), BurnCondition(6, "6h", "30m")),
    ),
    BurnAlert(
        "SlowBurn",
        "ticket",
        "15m",
        (BurnCondition(3, "1d", "2h"), BurnCondition(1, "3d", "6h")),
    ),
)


class Slo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    objective: float = Field(gt=0, lt=1)
    sli: Literal["availability", "latency"]
    # label matchers, with config.yml's placeholders: '[[ shop_selector ]], route="/x"'
    selector: str
    threshold_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _latency_needs_threshold(self) -> Slo:
        if self.sli == "latency" and self.threshold_seconds is None:
            raise ValueError("a latency SLO needs threshold_seconds (a histogram bucket boundary)")
        if self.sli == "availability" and self.threshold_seconds is not None:
            raise ValueError("threshold_seconds only applies to a latency SLO")
        return self


class SloFile(BaseModel):
    # load_gates belongs to the load tests; this generator only checks it is there.
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(gt=0)
    slos: dict[str, Slo]
    load_gates: dict[str, Any]


def load_slos(path: Path = SLOS_FILE) -> SloFile:
    with path.open(encoding="utf-8") as fh:
        return SloFile.model_validate(yaml.safe_load(fh))


def alert_prefix(slo_name: str) -> str:
    """`checkout-latency` -> `CheckoutLatency`."""
    return "".join(part.capitalize() for part in slo_name.replace("_", "-").split("-"))


def go_float(value: float) -> str:
    """A bucket boundary as prometheus-client writes it in the `le` label (1 -> "1.0")."""
    return repr(float(value))


def error_ratio_expr(slo: Slo, window: str) -> str:
    if slo.sli == "availability":
        return (
            # `or vector(0)`: no 5xx series at all means no errors, not "no data".
            f'(sum(rate(shop_http_requests_total{{{slo.selector}, status=~"5.."}}[{window}]))'
            f" or vector(0))\n"
            f"/\n"
            f"sum(rate(shop_http_requests_total{{{slo.selector}}}[{window}]))"
        )
    assert slo.threshold_seconds is not None
    le = go_float(slo.threshold_seconds)
    return (
        f"1 - (\n"
        f"  sum(rate(shop_http_request_duration_seconds_bucket"
        f'{{{slo.selector}, le="{le}"}}[{window}]))\n'
        f"  /\n"
        f"  sum(rate(shop_http_request_duration_seconds_count{{{slo.selector}}}[{window}]))\n"
        f")"
    )


def _number(value: float) -> str:
    return f"{value:g}"


def recording_group(name: str, slo: Slo, window_days: int) -> dict[str, Any]:
    labels = {"slo": name}
    budget = 1 - slo.objective
    windows = [*RATE_WINDOWS, f"{window_days}d"]
    rules: list[dict[str, Any]] = [
        {
            "record": f"slo:sli_error:ratio_rate{window}",
            "expr": error_ratio_expr(slo, window),
            "labels": labels,
        }
        for window in windows
    ]
    rules += [
        {
            "record": "slo:objective:ratio",
            "expr": f"vector({_number(slo.objective)})",
            "labels": labels,
        },
        {
            "record": "slo:error_budget_remaining:ratio",
            "expr": (
                f'1 - slo:sli_error:ratio_rate{window_days}d{{slo="{name}"}} / {_number(budget)}'
            ),
            "labels": labels,
        },
    ]
    return {"name": f"slo:{name}:recording", "rules": rules}


def burn_alert_rule(
    name: str, slo: Slo, alert: BurnAlert, window_days: int, config: MonitoringConfig
) -> dict[str, Any]:
    budget = _number(1 - slo.objective)
    selector = f'{{slo="{name}"}}'
    conditions = [
        f"(\n"
        f"  slo:sli_error:ratio_rate{c.long_window}{selector} / {budget} > {_number(c.factor)}\n"
        f"  and\n"
        f"  slo:sli_error:ratio_rate{c.short_window}{selector} / {budget} > {_number(c.factor)}\n"
        f")"
        for c in alert.conditions
    ]
    windows = " or ".join(
        f"{_number(c.factor)}x over {c.long_window} (and {c.short_window})"
        for c in alert.conditions
    )
    alertname = f"{alert_prefix(name)}{alert.suffix}"
    return {
        "alert": alertname,
        "expr": "\nor\n".join(conditions),
        "for": alert.for_,
        "labels": {"severity": alert.severity, "team": TEAM, "slo": name},
        "annotations": {
            "summary": f"SLO {name}: the error budget is burning too fast",
            "description": (
                f"{slo.description} Objective {slo.objective * 100:g} % over {window_days} days. "
                'The budget is burning {{ $value | printf "%.1f" }} times as fast as the '
                f"objective allows (threshold: {windows})."
            ),
            "runbook_url": config.runbook_url(alertname),
        },
    }


def filled_selector(name: str, slo: Slo, config: MonitoringConfig) -> Slo:
    """`slo` with the placeholders of its selector filled in from config.yml."""
    problems = monitoring_config.source_problems(slo.selector, config)
    if problems:
        raise ValueError(f"SLO {name}: the selector {'; '.join(problems)}")
    return slo.model_copy(update={"selector": monitoring_config.fill(slo.selector, config)})


def build_rules(slo_file: SloFile, config: MonitoringConfig) -> dict[str, Any]:
    groups: list[dict[str, Any]] = []
    window_days = slo_file.window_days
    for name, written in slo_file.slos.items():
        slo = filled_selector(name, written, config)
        groups.append(recording_group(name, slo, window_days))
        groups.append(
            {
                "name": f"slo:{name}:alerts",
                "rules": [
                    burn_alert_rule(name, slo, alert, window_days, config) for alert in BURN_ALERTS
                ],
            }
        )
    return {"groups": groups}


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings (the PromQL) as readable `|` blocks, without YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)

HEADER = (
    "# GENERATED from monitoring/slos.yml and monitoring/config.yml by monitoring/slo_rules.py.\n"
    "# Do not edit: change those and run `make rules` (a test fails while this file is stale).\n"
)


def render(slo_file: SloFile, config: MonitoringConfig | None = None) -> str:
    """Raises ValueError or jinja2.TemplateError for a selector config.yml cannot fill in."""
    rules = build_rules(slo_file, config or monitoring_config.default())
    body = yaml.dump(rules, Dumper=_LiteralDumper, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=Path, default=SLOS_FILE, help="the SLO file to read")
    parser.add_argument("--output", type=Path, default=OUTPUT_FILE, help="the rule file to write")
    parser.add_argument(
        "--config",
        type=Path,
        default=monitoring_config.CONFIG_FILE,
        help="the selectors and runbook link to fill in",
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the output is stale"
    )
    args = parser.parse_args(argv)
    try:
        config = monitoring_config.load(args.config)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        print(f"error: cannot read {args.config}: {error}", file=sys.stderr)
        return 2
    try:
        rendered = render(load_slos(args.slos), config)
    except (OSError, yaml.YAMLError, ValidationError, ValueError, jinja2.TemplateError) as error:
        print(f"error: cannot read the SLOs in {args.slos}: {error}", file=sys.stderr)
        return 2
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != rendered:
            print(f"{args.output} is stale: run `make rules`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(rendered, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    # `make rules` runs this module: render every rule file from its source, not only this one.
    from monitoring import render_rules

    sys.exit(render_rules.main())
