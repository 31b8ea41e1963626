"""What the lab's pager received: the notifications the alert sink on mon recorded
(monitoring/alert_sink.py; Alertmanager's every receiver delivers to it in the lab).

The sink listens on mon's loopback only, so this asks it from inside mon, as an operator
would (`ssh mon curl -sS http://127.0.0.1:9095/notifications`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import topology

from . import podman
from .layout import plan
from .settings import LabSettings


def notifications(settings: LabSettings, **filters: str) -> list[dict[str, Any]]:
    """Rows of the sink (one per alert per notification), oldest first; `filters`:
    receiver, alertname, status, since (Unix seconds)."""
    (mon,) = [h for h in plan(settings).values() if h.tier == "mgmt"]
    query = urlencode({k: v for k, v in filters.items() if v})
    url = f"http://127.0.0.1:{topology.load().port('alert_sink')}/notifications?{query}"
    answer = podman.exec_in(settings.container(mon.name), ["curl", "-sS", "--fail", url])
    return json.loads(answer.stdout)["notifications"]


def render_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no notification received"
    lines = [f"{'received (UTC)':19}  {'receiver':9}  {'status':8}  {'severity':8}  alert"]
    for row in rows:
        when = datetime.fromtimestamp(row["received_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        where = ", ".join(
            f"{k}={v}" for k, v in sorted(row["labels"].items()) if k in ("instance", "zone", "slo")
        )
        alert = f"{row['alertname']} {where}".strip()
        lines.append(
            f"{when}  {row['receiver']:9}  {row['status']:8}  {row['severity']:8}  {alert}"
        )
    return "\n".join(lines)
