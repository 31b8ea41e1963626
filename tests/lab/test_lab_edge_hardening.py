"""The edge as the public side sees it: only AEAD TLS suites, no internal endpoint, the back
office only from operator networks, and a login throttle that a crowd cannot outrun.

Run from the customer host (the public tier), the management host and this machine,
against the edge by its name, with the tools a person would use (openssl s_client, curl)."""

from __future__ import annotations

import json
import secrets
import shlex

import httpx
import pytest

import topology
from lab import podman
from tests.tls_suites import AEAD_SUITES, CBC_SUITES, s_client_command, suite_in

pytestmark = pytest.mark.lab
TOPO = topology.load()


def _edge_handshake(lab, *args: str) -> str:
    """`openssl s_client` from the customer host to the edge with `args`: its output."""
    (client,) = lab.hosts_in("public")
    (edge,) = lab.hosts_in("dmz")
    command = f"openssl s_client -connect {edge.name}:443 -servername {edge.name}"
    shell = ["sh", "-c", f"{command} {' '.join(args)} </dev/null 2>&1"]
    return podman.exec_in(lab.container(client.name), shell, check=False).stdout


def _suite_agreed_by_the_edge(lab, suites: str) -> tuple[str | None, str]:
    (client,) = lab.hosts_in("public")
    (edge,) = lab.hosts_in("dmz")
    command = s_client_command(edge.name, TOPO.port("https"), suites)
    output = podman.exec_in(lab.container(client.name), command, check=False).stdout
    return suite_in(output), output


def test_the_edge_offers_no_cbc_suite(lab):
    refused, output = _suite_agreed_by_the_edge(lab, CBC_SUITES)
    assert refused is None, output


def test_the_edge_speaks_tls12_with_aead_suites_and_tls13(lab):
    agreed, output = _suite_agreed_by_the_edge(lab, AEAD_SUITES)
    assert agreed in AEAD_SUITES.split(":"), output
    tls13 = _edge_handshake(lab, "-tls1_3")
    assert "TLSv1.3" in tls13, tls13


def _curl_edge(lab, tier: str, path: str, *args: str) -> str:
    """curl https://<edge><path> from the (only) host of `tier`: its standard output."""
    (host,) = lab.hosts_in(tier)
    (edge,) = lab.hosts_in("dmz")
    command = ["curl", "-sS", *args, f"https://{edge.name}{path}"]
    return podman.exec_in(lab.container(host.name), command).stdout


def _curl(lab, tier: str, path: str, *args: str) -> str:
    """The status code of https://<edge><path> asked from the (only) host of `tier`."""
    return _curl_edge(lab, tier, path, "-o", "/dev/null", "-w", "%{http_code}", *args)


def test_metrics_are_not_served_to_the_public(lab):
    paths = ("/metrics", "/%6detrics", "/api/products?page_size=1")
    codes = {path: _curl(lab, "public", path, "--path-as-is") for path in paths}
    assert codes == {"/metrics": "403", "/%6detrics": "403", "/api/products?page_size=1": "200"}


def test_the_back_office_answers_only_the_operator_networks(lab):
    path = "/api/admin/audit"
    with httpx.Client(verify=lab.tls(), timeout=10) as operator:
        from_this_machine = operator.get(lab.url("edge_https") + path.lstrip("/")).status_code
    codes = {
        "customer host": _curl(lab, "public", path),
        "customer host, encoded": _curl(lab, "public", "/api/%61dmin/audit", "--path-as-is"),
        "management host": _curl(lab, "mgmt", path),
        "this machine": str(from_this_machine),
    }
    # 401: the request reached the shop, which wants an admin session
    assert codes == {
        "customer host": "403",
        "customer host, encoded": "403",
        "management host": "401",
        "this machine": "401",
    }, codes


def _password_checks(lab) -> float:
    """shop_login_password_checks_total summed over the app servers (read from mon)."""
    (mon,) = lab.hosts_in("mgmt")
    total = 0.0
    for app in lab.hosts_in("app"):
        text = podman.exec_in(
            lab.container(mon.name),
            ["curl", "-sS", f"https://{app.name}:{TOPO.port('app')}/metrics"],
        ).stdout
        total += sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("shop_login_password_checks_total")
        )
    return total


def _post_json_from_client(lab, path: str, body: dict) -> str:
    """POST `body` as JSON to the edge from the customer host: the answer's body."""
    json_body = ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    return _curl_edge(lab, "public", path, *json_body)


def test_a_crowd_of_wrong_passwords_is_evaluated_at_most_the_limit_and_the_owner_gets_in(lab):
    """50 concurrent wrong passwords from one stranger: at most LOGIN_MAX_FAILURES are
    evaluated; the owner, from another client, still logs in.

    The customer host is the lab's load generator, trusted to name its shoppers in
    X-Forwarded-For; the stranger is a documentation address (RFC 5737), so its blocked
    IP touches no other test."""
    limit = 5  # the shop's LOGIN_MAX_FAILURES (the default the lab keeps)
    stranger = "198.51.100.7"
    email, password = f"lab-owner-{secrets.token_hex(4)}@example.com", "the owner's passphrase"
    registered = _post_json_from_client(
        lab, "/api/auth/register", {"email": email, "password": password, "full_name": "Owner"}
    )
    assert json.loads(registered).get("status") == "accepted", registered
    before = _password_checks(lab)

    (client,) = lab.hosts_in("public")
    (edge,) = lab.hosts_in("dmz")
    body = json.dumps({"email": email, "password": "wrong guess"})
    crowd = (
        f"seq 50 | xargs -P 50 -I{{}} curl -sS -o /dev/null -w '%{{http_code}}\\n' "
        f"-H 'Content-Type: application/json' -H 'X-Forwarded-For: {stranger}' "
        f"-d {shlex.quote(body)} https://{edge.name}/api/auth/login"
    )
    codes = podman.exec_in(lab.container(client.name), ["sh", "-c", crowd]).stdout.split()
    evaluated = _password_checks(lab) - before

    assert len(codes) == 50 and set(codes) <= {"401", "429"}, codes
    assert codes.count("401") <= limit, codes
    assert evaluated <= limit, f"{evaluated} passwords evaluated for 50 guesses"
    owner = _post_json_from_client(lab, "/api/auth/login", {"email": email, "password": password})
    assert "access_token" in json.loads(owner), owner
