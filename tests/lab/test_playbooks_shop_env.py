"""The shop role's environment file (no lab): what the role writes is what the shop reads.
Ansible renders the role's own `shop.env.j2`; the shop's settings classes read the result."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.partners.settings import PartnersSettings
from drills import run as drills_run
from tests.role_templates import PLAYBOOKS, render_role_template

# What the template needs that the role's defaults do not give (inventory and secrets).
REQUIRED = {
    "service_address": "10.0.0.5",
    "shop_version": "1.0.0",
    "shop_database_url": "postgresql+psycopg://shop@db:5433/shop",
    "shop_redis_url": "rediss://db:6380/0",
    "shop_partners_host": "partners",
    "shop_payments_api_key": "api-key",
    "shop_smtp_username": "shop-mailer",
    "shop_smtp_password": "smtp-password",
    "shop_payments_webhook_secret": "payments-secret",
    "shop_couriers_webhook_secret": "couriers-secret",
    "shop_totp_encryption_key": "totp-key",
}
MAILS_PER_DRILL = 100  # about 70 order mails at the drill load, with room


def _environment(tmp_path: Path, **overrides: object) -> dict[str, str]:
    rendered = render_role_template("shop", "shop.env.j2", tmp_path, {**REQUIRED, **overrides})
    lines = rendered.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return dict(pairs)


@pytest.mark.parametrize("cap", [500, 12345])
def test_the_mail_cap_the_role_writes_is_the_one_the_shop_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: int
) -> None:
    environment = _environment(tmp_path, shop_mail_daily_cap=cap)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert PartnersSettings().mail_daily_cap == cap


def test_the_lab_mail_cap_outlasts_a_whole_run_of_the_drills() -> None:
    lab_vars = PLAYBOOKS / "inventories" / "lab" / "group_vars" / "all.yml"
    cap = yaml.safe_load(lab_vars.read_text(encoding="utf-8"))["shop_mail_daily_cap"]
    # Several runs of `make lab-drills` in one day, and `make test`'s drills besides.
    assert cap >= 10 * MAILS_PER_DRILL * len(drills_run.names())
