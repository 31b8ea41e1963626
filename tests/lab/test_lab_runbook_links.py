"""Every page's runbook link opens in the lab: mon's Prometheus serves the runbooks
rendered (the monitoring role, monitoring_runbooks_served), at the base its external
label gives every alert, on the address this machine reaches it, behind the same HTTPS
and basic auth; the links inside each page land too, and so does the Watchdog's link as
the lab's pager received it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import pages
from tests.runbook_links import alert_runbook_urls, assert_runbook_page, follow_links

pytestmark = pytest.mark.lab
RUNBOOKS_DIR = Path(__file__).resolve().parents[2] / "runbooks"


def test_every_alerts_runbook_url_opens_its_page_on_mon(lab) -> None:
    prometheus = lab.url("prometheus")
    base_url = f"{prometheus}consoles/runbooks"
    with lab.monitoring_client() as client:
        urls = alert_runbook_urls(client, prometheus, base_url)
        assert "Watchdog" in urls and "ZoneDown" in urls, sorted(urls)
        for alert, url in sorted(urls.items()):
            assert_runbook_page(client.get(url), alert)
        followed = sum(
            follow_links(client, f"{base_url}/{path.name}")
            for path in sorted(RUNBOOKS_DIR.glob("*.md"))
        )
        assert followed >= len(urls)
        for beat in pages.notifications(lab.settings, alertname="Watchdog")[-1:]:
            assert_runbook_page(client.get(beat["runbook_url"]), "Watchdog")
    with lab.monitoring_client() as client:
        client.auth = None
        assert client.get(urls["Watchdog"]).status_code == 401
