"""Which alert each drill fires, and why the others cannot be provoked in the lab.

The experiments say what they fire (`extensions: - name: drill, alerts: [...]`); the
alerts no drill can provoke are in drills/unprovoked.yml with the reason. The report's
alert table is built from both, whichever drills ran.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from . import activities

DRILLS_DIR = Path(__file__).resolve().parent
EXPERIMENTS_DIR = DRILLS_DIR / "experiments"
UNPROVOKED_FILE = DRILLS_DIR / "unprovoked.yml"


def drill_extension(experiment: Path) -> dict:
    document = yaml.safe_load(experiment.read_text(encoding="utf-8"))
    for extension in document.get("extensions", []):
        if extension.get("name") == "drill":
            return extension
    return {}


def drilled_alerts() -> dict[str, list[str]]:
    """Alert -> the drills that fire it, from every experiment."""
    drilled: dict[str, list[str]] = {}
    for experiment in sorted(EXPERIMENTS_DIR.glob("*.yaml")):
        for alert in drill_extension(experiment).get("alerts", []):
            drilled.setdefault(alert, []).append(experiment.stem)
    return drilled


def unprovoked() -> dict[str, str]:
    """Alert -> why no drill can provoke it in the lab."""
    reasons = yaml.safe_load(UNPROVOKED_FILE.read_text(encoding="utf-8")) or {}
    return {alert: " ".join(str(reason).split()) for alert, reason in reasons.items()}


def rows() -> list[tuple[str, str, str]]:
    """(alert, severity, drilled by / why not) for every alert of monitoring/rules."""
    drilled, reasons = drilled_alerts(), unprovoked()
    table = []
    for rule in sorted(activities.alert_rules(), key=lambda r: r["alert"]):
        name = rule["alert"]
        if name in drilled:
            cell = ", ".join(drilled[name])
        elif name in reasons:
            cell = f"cannot be provoked in the lab: {reasons[name]}"
        else:
            cell = "not drilled yet"
        table.append((name, str(rule["labels"].get("severity")), cell))
    return table
