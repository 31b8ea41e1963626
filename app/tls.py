"""The one TLS rule for every server this repository runs in Python (the shop's HTTPS
port, the partner sandboxes' HTTPS and SMTP STARTTLS): TLS 1.2 or newer, and under
TLS 1.2 only ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305), as in
Mozilla's "intermediate" profile. TLS 1.3 has only AEAD suites and needs no list.

The edge (HAProxy), Redis and PostgreSQL get the same rule from their roles' defaults;
tests/tls_suites.py holds the suites every test offers to check it."""

from __future__ import annotations

import ssl
from pathlib import Path

# OpenSSL cipher-list syntax: every suite with ECDHE key exchange and AES-GCM or ChaCha20.
TLS12_AEAD_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def harden_server_context(context: ssl.SSLContext) -> ssl.SSLContext:
    """Apply the rule to a server context: TLS 1.2 floor, AEAD suites only, ours first."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_AEAD_CIPHERS)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
    return context


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """A server context presenting `cert_file` (with its key), under the rule."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return harden_server_context(context)
