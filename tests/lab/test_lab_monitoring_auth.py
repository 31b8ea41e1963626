"""Prometheus and Alertmanager as this machine reaches them: HTTPS with a certificate from
the lab CA, and the operator's basic auth on every request; nothing less gets an answer.

The operator's password is the one the converge generated into the lab's secrets dir
(lab/monitoring_access.py reads it); the client files `python -m lab converge` writes for
curl and amtool are the ones the runbooks and READMEs tell operators to use. That every
target is still up and Alertmanager still discovered is test_lab_service.py's.
"""

from __future__ import annotations

import subprocess

import httpx
import pytest

from lab import monitoring_access

pytestmark = pytest.mark.lab

# an API answer each of them gives the operator (and a stranger must not get)
API = {"prometheus": "api/v1/status/buildinfo", "alertmanager": "api/v2/status"}


@pytest.mark.parametrize("published", sorted(API))
def test_only_https_with_the_operators_password_gets_an_answer(lab, published):
    url = lab.url(published) + API[published]
    assert url.startswith("https://127.0.0.1:"), url
    plain = httpx.get(url.replace("https://", "http://", 1), timeout=10)
    # Go's TLS server answers plain HTTP "Client sent an HTTP request to an HTTPS server."
    assert plain.status_code == 400, plain.text
    user, password = lab.monitoring.auth()
    for auth in (None, (user, password + "x"), (user, ""), ("admin", password)):
        with httpx.Client(verify=lab.tls(), auth=auth, timeout=10) as client:
            answer = client.get(url)
        assert answer.status_code == 401, (auth and auth[0], answer.status_code)
    with lab.monitoring_client() as client:  # the certificate verified against the lab CA
        answer = client.get(url)
    assert answer.status_code == 200, answer.text
    assert answer.json()
    # the lab CA is what makes it verify: the public trust store does not know it
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url, auth=lab.monitoring.auth(), timeout=10)


def test_the_operators_client_files_work_with_curl_and_amtool(lab, tmp_path):
    files = monitoring_access.write_client_files(lab.settings)
    assert files["curl_config"].stat().st_mode & 0o077 == 0, "it holds the password"
    curl = subprocess.run(
        ["curl", "-sS", "--fail", "-K", str(files["curl_config"]),
         lab.url("prometheus") + "api/v1/status/buildinfo"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert curl.returncode == 0 and '"status":"success"' in curl.stdout, curl.stderr
    amtool = subprocess.run(
        ["amtool", f"--http.config.file={files['http_config']}",
         f"--alertmanager.url={lab.url('alertmanager')}", "config", "show"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert amtool.returncode == 0 and "route:" in amtool.stdout, amtool.stderr
    # the lab CA alone is not enough: without the operator's login amtool is turned away
    ca_only = tmp_path / "ca-only.yml"
    ca_only.write_text(f"tls_config:\n  ca_file: {lab.ca_file}\n", encoding="utf-8")
    refused = subprocess.run(
        ["amtool", f"--http.config.file={ca_only}",
         f"--alertmanager.url={lab.url('alertmanager')}", "config", "show"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr, refused
