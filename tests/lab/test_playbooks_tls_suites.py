"""Every TLS server the roles configure offers, under TLS 1.2, only ECDHE suites with AEAD
ciphers (the edge, Redis, PostgreSQL), as the shop's own servers do (app/tls.py).

No lab needed: reads the roles' defaults and templates, asks OpenSSL what each cipher
list expands to, and runs Redis on loopback with the role's list (the lab tests check
the converged hosts)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from app.tls import TLS12_AEAD_CIPHERS
from local_processes import stop
from tests.tls_suites import AEAD_SUITES, CBC_SUITES, agreed_suite, start_tls_redis

ROLES = Path(__file__).resolve().parents[2] / "playbooks" / "roles"
# role -> (its cipher-list variable, the template line that must use it)
CIPHER_LISTS = {
    "edge": ("edge_tls12_ciphers", "haproxy.cfg.j2", "ssl-default-bind-ciphers"),
    "redis": ("redis_tls12_ciphers", "redis.conf.j2", "tls-ciphers"),
    "postgresql": ("postgresql_ssl_ciphers", "postgresql.conf.j2", "ssl_ciphers ="),
}


def _default(role: str, variable: str) -> str:
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    return str(defaults[variable]).strip()


def _tls12_suites(cipher_list: str) -> list[str]:
    """`openssl ciphers -v` lines of the TLS 1.2 suites `cipher_list` expands to."""
    listing = subprocess.run(
        ["openssl", "ciphers", "-v", "-s", "-tls1_2", "-ciphersuites", "", cipher_list],
        capture_output=True,
        text=True,
        check=True,
    )
    return listing.stdout.splitlines()


@pytest.mark.parametrize("role", sorted(CIPHER_LISTS))
def test_the_role_offers_only_ecdhe_aead_suites_under_tls12(role: str) -> None:
    variable, template, directive = CIPHER_LISTS[role]
    suites = _tls12_suites(_default(role, variable))
    assert suites, f"{role}: {variable} names no TLS 1.2 suite"
    weak = [s for s in suites if "Kx=ECDH " not in s or "Mac=AEAD" not in s]
    assert not weak, f"{role}: {variable} lets in {weak}"
    text = (ROLES / role / "templates" / template).read_text()
    assert re.search(rf"^\s*{re.escape(directive)}\s*'?\{{\{{ {variable} \}}\}}", text, re.M), (
        f"{template} does not configure {directive} from {variable}"
    )


def test_the_roles_and_the_shop_agree_on_one_suite_list() -> None:
    lists = {role: _tls12_suites(_default(role, v)) for role, (v, _, _) in CIPHER_LISTS.items()}
    shop = _tls12_suites(TLS12_AEAD_CIPHERS)
    assert {role: sorted(s) for role, s in lists.items()} == {role: sorted(shop) for role in lists}


def test_redis_with_the_role_cipher_list_refuses_cbc_suites(tmp_path: Path) -> None:
    redis, port, _ = start_tls_redis(
        tmp_path,
        "--tls-ciphers", _default("redis", "redis_tls12_ciphers"),
        "--tls-prefer-server-ciphers", "yes",
    )  # fmt: skip
    try:
        assert agreed_suite("127.0.0.1", port, CBC_SUITES) is None
        assert agreed_suite("127.0.0.1", port, AEAD_SUITES) in AEAD_SUITES.split(":")
    finally:
        stop(redis)
