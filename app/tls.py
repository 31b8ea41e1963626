"""The shop's TLS rule for the HTTPS port it serves: TLS 1.2 or newer (the floor of
Debian's OpenSSL configuration, which Python uses), and under TLS 1.2
only ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305), as in Mozilla's
"intermediate" profile. TLS 1.3 has only AEAD suites and needs no list.

The edge (HAProxy), Redis and PostgreSQL get the same rule from their roles' defaults
(tests/lab/test_playbooks_tls_suites.py checks they agree); the partner sandboxes have
their own (app/sandbox/tls.py: they share no code with the shop). tests/tls_suites.py
holds the suites every test offers to check them."""

from __future__ import annotations

# OpenSSL cipher-list syntax: every suite with ECDHE key exchange and AES-GCM or ChaCha20.
TLS12_AEAD_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
