"""Jinja filter: the repository's Alertmanager routing with one environment's receivers.

monitoring/alertmanager/alertmanager.yml holds what every environment shares (routes,
grouping, inhibitions) and names the receivers without integrations. Where each
receiver delivers differs per environment: the lab's alert sink on mon, the stack's SNS
topic on AWS. The monitoring role merges `monitoring_alertmanager_receivers` (receiver
name -> its integrations, e.g. {pager: {webhook_configs: [...]}}) into that file here.

It refuses what would page nobody: integrations for a receiver the routing does not
name (a typo would route pages to a receiver that delivers nowhere), and a required
receiver (`pager`) without any integration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError


def _plain(value: Any) -> Any:
    """Ansible's own containers and strings as plain Python ones, as PyYAML dumps them."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)


def _integrations(entry: dict[str, Any]) -> list[str]:
    return [key for key, value in entry.items() if key.endswith("_configs") and value]


def alertmanager_config(
    routing_text: str, receivers: dict[str, dict[str, Any]], required: list[str] | None = None
) -> str:
    """alertmanager.yml (YAML text) with `receivers`' integrations in its receivers."""
    config = yaml.safe_load(routing_text)
    receivers = _plain(receivers)
    names = [entry["name"] for entry in config.get("receivers", [])]
    unknown = sorted(set(receivers) - set(names))
    if unknown:
        raise AnsibleFilterError(
            f"monitoring_alertmanager_receivers names {unknown}, which the routing does not "
            f"have (it has {names})"
        )
    for name, entry in receivers.items():
        if not isinstance(entry, dict) or set(entry) - set(_integrations(entry)) - {"name"}:
            raise AnsibleFilterError(f"receiver {name}: give only *_configs lists, not {entry}")
    merged = [{"name": name, **(receivers.get(name) or {})} for name in names]
    silent = [name for name in required or [] if not _integrations(receivers.get(name) or {})]
    if silent:
        raise AnsibleFilterError(
            f"receiver(s) {silent} deliver nowhere: set their integrations in "
            "monitoring_alertmanager_receivers (a page must reach someone)"
        )
    config["receivers"] = merged
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=1000)


def alert_sink_receivers(routing_text: str, sink_url: str) -> dict[str, dict[str, Any]]:
    """Every receiver of the routing (but "null") delivering to the alert sink at
    `sink_url` (monitoring/alert_sink.py), as /hooks/<receiver>: the lab's receivers."""
    names = [entry["name"] for entry in yaml.safe_load(routing_text).get("receivers", [])]
    return {
        name: {
            "webhook_configs": [
                {
                    "url": f"{sink_url.rstrip('/')}/hooks/{name}",
                    # a heartbeat never resolves; everything else says when it is over
                    "send_resolved": name != "heartbeat",
                }
            ]
        }
        for name in names
        if name != "null"
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "alertmanager_config": alertmanager_config,
            "alert_sink_receivers": alert_sink_receivers,
        }
