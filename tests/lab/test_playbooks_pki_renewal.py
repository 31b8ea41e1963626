"""The pki role signs a host certificate again once it nears expiry (no lab needed).

Runs the role's control-node tasks (`roles/pki/tasks/sign.yml`) on localhost with a
scratch `pki_dir`, as every converge does: a certificate that expires within
`pki_renew_before_days` is signed again for `pki_cert_valid_days`, one that does not is
left alone. The TLSCertificateExpiryImminent runbook's mitigation relies on this.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from drills.certificates import short_lived_copy
from tests.role_templates import PLAYBOOKS, run_playbook

CERT_NAME = "edge"
VALID_DAYS = 365
RENEW_BEFORE_DAYS = 30


def _sign(pki_dir: Path) -> None:
    play = [
        {
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {
                "pki_dir": str(pki_dir),
                "pki_ca_common_name": "test CA",
                "pki_ca_valid_days": 825,
                "pki_cert_valid_days": VALID_DAYS,
                "pki_renew_before_days": RENEW_BEFORE_DAYS,
                "pki_cert_name": CERT_NAME,
                "pki_subject_alt_names": ["DNS:edge"],
            },
            "tasks": [
                {"ansible.builtin.import_tasks": str(PLAYBOOKS / "roles/pki/tasks/sign.yml")}
            ],
        }
    ]
    result = run_playbook(play, pki_dir.parent, "localhost,", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def _cert_path(pki_dir: Path) -> Path:
    return pki_dir / f"localhost-{CERT_NAME}.crt"


def _not_after(pki_dir: Path) -> datetime:
    return x509.load_pem_x509_certificate(_cert_path(pki_dir).read_bytes()).not_valid_after_utc


def _replace_with_short_lived(pki_dir: Path, days: int) -> None:
    """What a renewal that never ran leaves: the same key and names, `days` to live."""
    _cert_path(pki_dir).write_bytes(
        short_lived_copy(
            _cert_path(pki_dir).read_bytes(),
            (pki_dir / "ca.crt").read_bytes(),
            (pki_dir / "ca.key").read_bytes(),
            days,
        )
    )


def test_a_certificate_near_expiry_is_signed_again_and_a_fresh_one_is_kept(
    tmp_path: Path,
) -> None:
    pki_dir = tmp_path / "pki"
    _sign(pki_dir)
    issued = _not_after(pki_dir)
    assert issued - datetime.now(UTC) > timedelta(days=VALID_DAYS - 1)

    _sign(pki_dir)  # nothing due: the same certificate
    assert _not_after(pki_dir) == issued

    _replace_with_short_lived(pki_dir, days=2)
    assert _not_after(pki_dir) - datetime.now(UTC) < timedelta(days=3)
    _sign(pki_dir)
    renewed = x509.load_pem_x509_certificate(_cert_path(pki_dir).read_bytes())
    assert renewed.not_valid_after_utc - datetime.now(UTC) > timedelta(days=VALID_DAYS - 1)
    names = renewed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["edge"]
