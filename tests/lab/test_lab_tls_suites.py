"""Every TLS hop inside the lab offers only AEAD suites under TLS 1.2, as each client of
that hop sees it: the app servers to the partners (payments, couriers, SMTP STARTTLS) and
to the data tier (Redis, PostgreSQL), the management host to the app servers. (The
edge, seen from the customer host, is in test_lab_edge_hardening.py.)

Each check is an `openssl s_client` run on the client's host, through the firewall."""

from __future__ import annotations

import pytest

import topology
from lab import podman
from tests.tls_suites import AEAD_SUITES, CBC_SUITES, s_client_command, suite_in

pytestmark = pytest.mark.lab
TOPO = topology.load()

# (client tier, server tier, named port, openssl -starttls protocol or None)
HOPS = [
    ("app", "partners", "payments", None),
    ("app", "partners", "couriers", None),
    ("app", "partners", "smtp", "smtp"),
    ("app", "data", "redis", None),
    ("app", "data", "postgres", "postgres"),
    ("mgmt", "app", "app", None),
]


def _agreed(lab, client_tier: str, server_tier: str, port: str, starttls, suites: str):
    client = lab.hosts_in(client_tier)[0]
    server = lab.hosts_in(server_tier)[0]
    command = s_client_command(server.name, TOPO.port(port), suites, starttls=starttls)
    output = podman.exec_in(lab.container(client.name), command, check=False).stdout
    return suite_in(output), output


@pytest.mark.parametrize(("client", "server", "port", "starttls"), HOPS, ids=[h[2] for h in HOPS])
def test_the_hop_refuses_cbc_suites_and_agrees_an_aead_one(lab, client, server, port, starttls):
    refused, output = _agreed(lab, client, server, port, starttls, CBC_SUITES)
    assert refused is None, output
    agreed, output = _agreed(lab, client, server, port, starttls, AEAD_SUITES)
    assert agreed in AEAD_SUITES.split(":"), output
