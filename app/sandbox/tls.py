"""The sandboxes' TLS, as a provider configures its own servers: TLS 1.2 or newer, and
under TLS 1.2 only ECDHE key exchange with AEAD ciphers (Mozilla's "intermediate").

Kept apart from the shop's rule (app/tls.py) on purpose: the sandboxes stand in for the
partners and share no code with the shop they are there to check (tests/app/test_boundaries.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

# OpenSSL cipher-list syntax; TLS 1.3's suites are all AEAD and need no list.
PROVIDER_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def provider_server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(PROVIDER_TLS12_CIPHERS)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
    context.load_cert_chain(cert_file, key_file)
    return context
