"""The lab's generated secrets, without containers: what Ansible resolves for the hosts.

The lab generates one secret per partner into lab/state/<lab>/secrets (the
`password` lookup of the committed group_vars) and gives the same value to the
shop (shop_*_webhook_secret -> PARTNERS_*_WEBHOOK_SECRET) and the sandboxes
(partners_*_webhook_secret -> SANDBOX_*_WEBHOOK_SECRET). It sets no webhook URL:
the topology has no flow from the partners tier to the shop, so the sandboxes
cannot push there and the shop pulls tracking instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bcrypt
import yaml
from cryptography.fernet import Fernet

import topology
from lab import monitoring_access
from lab.settings import MAIN_INVENTORY, PLAYBOOKS

ROLES = PLAYBOOKS / "roles"
ANSIBLE = Path(sys.executable).with_name("ansible")
SECRETS = {
    "payments": ("shop_payments_webhook_secret", "partners_payments_webhook_secret"),
    "couriers": ("shop_couriers_webhook_secret", "partners_couriers_webhook_secret"),
}


def _resolved(
    tmp_path: Path,
    names: list[str] | None = None,
    *,
    pattern: str = "tier_app:tier_partners",
    expressions: dict[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """host -> the named variables (default: the four webhook secrets) and expressions
    (name -> Jinja expression), as `ansible` resolves them from the lab's group_vars
    for the hosts of `pattern`."""
    inventory = tmp_path / "inventory"
    if not inventory.exists():
        inventory.mkdir()
        (inventory / "group_vars").symlink_to(
            MAIN_INVENTORY / "group_vars", target_is_directory=True
        )
    tiers: dict[str, dict[str, dict[str, None]]] = {}
    for name, host in topology.load().lab.hosts.items():
        tiers.setdefault(f"tier_{host.tier}", {"hosts": {}})["hosts"][name] = None
    state = tmp_path / "state"
    hosts = {"all": {"vars": {"lab_state_dir": str(state)}, "children": tiers}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    if names is None and expressions is None:
        names = [name for pair in SECRETS.values() for name in pair]
    asked = {**{name: name for name in names or []}, **(expressions or {})}
    message = "{{ {" + ", ".join(f"{k!r}: {v}" for k, v in asked.items()) + "} | to_json }}"
    result = subprocess.run(
        [ANSIBLE, pattern, "-i", str(inventory / "hosts.yml"),
         "-c", "local", "-m", "ansible.builtin.debug", "-a", f"msg={message}"],
        cwd=PLAYBOOKS,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    task = json.loads(result.stdout)["plays"][0]["tasks"][0]
    return {host: json.loads(answer["msg"]) for host, answer in task["hosts"].items()}


def test_lab_shop_and_sandboxes_share_one_generated_secret_per_partner(tmp_path: Path) -> None:
    resolved = _resolved(tmp_path)
    assert {"app-a1", "app-b1", "partners"} <= set(resolved)
    for partner, (shop_name, sandbox_name) in SECRETS.items():
        stored = (tmp_path / "state" / "secrets" / f"{partner}_webhook").read_text().strip()
        assert len(stored) >= 32
        for host, values in resolved.items():
            assert values[shop_name] == values[sandbox_name] == stored, (host, partner)
    payments, couriers = (resolved["partners"][pair[1]] for pair in SECRETS.values())
    assert payments != couriers


def test_lab_templates_hand_the_secrets_to_both_sides_and_set_no_push_target() -> None:
    shop_env = (ROLES / "shop" / "templates" / "shop.env.j2").read_text()
    sandboxes_env = (ROLES / "partners" / "templates" / "sandboxes.env.j2").read_text()
    for partner, (shop_name, sandbox_name) in SECRETS.items():
        upper = partner.upper()
        assert f"PARTNERS_{upper}_WEBHOOK_SECRET={{{{ {shop_name} }}}}" in shop_env
        assert f"SANDBOX_{upper}_WEBHOOK_SECRET={{{{ {sandbox_name} }}}}" in sandboxes_env
    defaults = yaml.safe_load((ROLES / "partners" / "defaults" / "main.yml").read_text())
    lab_vars = yaml.safe_load((MAIN_INVENTORY / "group_vars" / "all.yml").read_text())
    for name in ("partners_payments_webhook_url", "partners_couriers_webhook_url"):
        assert defaults[name] == "" and name not in lab_vars
    # why: nothing in the partners tier may open a connection to the shop (app) or the edge
    topo = topology.load()
    assert not topo.allowed_ports("partners", "app") and not topo.allowed_ports("partners", "dmz")


def test_the_lab_shop_gets_a_generated_fernet_key_for_totp_secrets(tmp_path: Path) -> None:
    """The lab runs the shop as production, which refuses to start without the key."""
    first = _resolved(tmp_path, ["shop_totp_encryption_key"])
    again = _resolved(tmp_path, ["shop_totp_encryption_key"])
    keys = {host: values["shop_totp_encryption_key"] for host, values in first.items()}
    assert len(set(keys.values())) == 1, keys
    (key,) = set(keys.values())
    Fernet(key.encode())  # raises unless it is urlsafe base64 of 32 bytes
    assert {v["shop_totp_encryption_key"] for v in again.values()} == {key}
    assert (tmp_path / "state" / "secrets" / "shop_totp_key").exists()


def test_lab_shop_and_sandboxes_share_the_generated_partner_credentials(tmp_path: Path) -> None:
    """The lab's sandboxes require a payment API key and an SMTP login, as the providers
    do; the shop must be given the same ones, or a production shop refuses to start."""
    pairs = {
        "payments_api_key": ("shop_payments_api_key", "partners_payments_api_key"),
        "smtp_username": ("shop_smtp_username", "partners_smtp_username"),
        "smtp_password": ("shop_smtp_password", "partners_smtp_password"),
    }
    resolved = _resolved(tmp_path, [name for pair in pairs.values() for name in pair])
    for shop_name, sandbox_name in pairs.values():
        values = {(v[shop_name], v[sandbox_name]) for v in resolved.values()}
        assert len(values) == 1, (shop_name, values)
        ((shop_value, sandbox_value),) = values
        assert shop_value and shop_value == sandbox_value, shop_name
    for stored in ("payments_api_key", "smtp_password"):
        assert len((tmp_path / "state" / "secrets" / stored).read_text().strip()) >= 32
    shop_env = (ROLES / "shop" / "templates" / "shop.env.j2").read_text()
    sandboxes_env = (ROLES / "partners" / "templates" / "sandboxes.env.j2").read_text()
    for variable, (shop_name, sandbox_name) in pairs.items():
        assert f"PARTNERS_{variable.upper()}={{{{ {shop_name} }}}}" in shop_env
        assert f"SANDBOX_{variable.upper()}={{{{ {sandbox_name} }}}}" in sandboxes_env


def test_the_lab_generates_the_monitoring_password_once_and_hashes_it_the_same_way(
    tmp_path: Path,
) -> None:
    """Prometheus's and Alertmanager's operator password: one file the lab CLI reads too,
    and a bcrypt hash (the filter the web config uses) that does not change between runs."""
    expressions = {
        "password": "monitoring_web_password",
        "hash": "monitoring_web_password | bcrypt_hash(inventory_hostname ~ ':operator', 4)",
    }
    first = _resolved(tmp_path, pattern="tier_mgmt", expressions=expressions)
    again = _resolved(tmp_path, pattern="tier_mgmt", expressions=expressions)
    assert set(first) == {"mon"} and again == first
    stored = (tmp_path / "state" / "secrets" / monitoring_access.PASSWORD_FILE_NAME).read_text()
    assert first["mon"]["password"] == stored.strip() and len(stored.strip()) >= 16
    assert bcrypt.checkpw(stored.strip().encode(), first["mon"]["hash"].encode())
