"""The certificate the cert-near-expiry fault installs: the edge's own, about to expire.

A renewal that never ran leaves a certificate with the same key, names and issuer as
the current one, only days from its end. `short_lived_copy` signs exactly that with the
lab's CA (the control node's `pki_dir`), so the only thing wrong is the date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes


def short_lived_copy(cert_pem: bytes, ca_cert_pem: bytes, ca_key_pem: bytes, days: float) -> bytes:
    """`cert_pem` signed again by the CA, valid for `days` more (PEM)."""
    current = x509.load_pem_x509_certificate(cert_pem)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, CertificateIssuerPrivateKeyTypes):
        raise ValueError(f"the CA key is a {type(ca_key).__name__}, which cannot sign")
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(ca_cert.subject)
        .public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
    )
    for extension in current.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def days_left(cert_pem: bytes) -> float:
    end = x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc
    return (end - datetime.now(UTC)).total_seconds() / 86400
