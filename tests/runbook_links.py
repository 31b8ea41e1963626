"""Every alert's runbook_url as a Prometheus holds it, and the links inside a served page:
what tests/monitoring/test_runbook_pages.py and tests/lab/test_lab_runbook_links.py follow."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx

BASE_LABEL = "{{ $externalLabels.runbook_base_url }}"
_HREF = re.compile(r'href="([^"]+)"')
_ID = re.compile(r'id="([^"]+)"')


def alert_runbook_urls(client: httpx.Client, prometheus_url: str, base_url: str) -> dict[str, str]:
    """Alert -> its runbook_url with Prometheus's external label `base_url` filled in.

    Fails unless Prometheus's configuration carries that label and every alert builds
    its link from it."""
    prometheus_url = prometheus_url.rstrip("/")
    config = client.get(f"{prometheus_url}/api/v1/status/config").json()["data"]["yaml"]
    assert f"runbook_base_url: {base_url}\n" in config, config
    groups = client.get(f"{prometheus_url}/api/v1/rules?type=alert").json()["data"]["groups"]
    urls = {}
    for group in groups:
        for rule in group["rules"]:
            url = rule["annotations"]["runbook_url"]
            assert url.startswith(BASE_LABEL), (rule["name"], url)
            urls[rule["name"]] = url.replace(BASE_LABEL, base_url, 1)
    return urls


def assert_runbook_page(page: httpx.Response, alert: str) -> None:
    assert page.status_code == 200, (alert, str(page.url), page.status_code)
    assert page.headers["content-type"].startswith("text/html"), (alert, page.headers)
    assert f"<title>{alert} - runbook</title>" in page.text, alert
    assert f'<h1 id="{alert.lower()}">{alert}</h1>' in page.text, alert


def follow_links(client: httpx.Client, page_url: str) -> int:
    """GET every link of the page at `page_url` that stays on its server; each must answer
    200 and hold the anchor it points at. Returns how many were followed."""
    page = client.get(page_url)
    assert page.status_code == 200, page_url
    followed = 0
    for href in _HREF.findall(page.text):
        if urlsplit(href).scheme in ("http", "https", "mailto"):
            continue  # outside the server: not ours to serve
        target = urljoin(page_url, href)
        landed = client.get(target)
        assert landed.status_code == 200, (page_url, href, landed.status_code)
        fragment = urlsplit(target).fragment
        if fragment:
            assert fragment in _ID.findall(landed.text), (page_url, href)
        followed += 1
    return followed
