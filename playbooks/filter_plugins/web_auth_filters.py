"""Jinja filters for basic auth in the exporter-toolkit web config (Prometheus, Alertmanager).

The web config keeps bcrypt hashes of its users' passwords. bcrypt normally draws a
random salt, so hashing on every converge would rewrite the file every time and the
second converge would never be 0 changed. `bcrypt_hash` takes its salt from a string
the caller names instead (the host and the user), so one password always gives the
same hash on one host and a new password a new hash.

The salt is never derived from the password: it is written in clear in the hash, and a
salt made from the password would hand an attacker a fast hash of it.

Ansible's own `password_hash('bcrypt', salt=...)` needs passlib, which is unmaintained
(and not in requirements.lock); this uses pyca's bcrypt (the `lab` extra).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import bcrypt
from ansible.errors import AnsibleFilterError

# bcrypt's base64 alphabet, in the order of the standard one it replaces
_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TO_BCRYPT = bytes.maketrans(_STANDARD, _BCRYPT)
# bcrypt reads at most this many bytes of a password (pyca's bcrypt 5 refuses longer ones)
MAX_PASSWORD_BYTES = 72


def bcrypt_salt(salt_from: str, cost: int = 12) -> bytes:
    """The salt part of a hash: "$2b$<cost>$" and 16 bytes of SHA-256(salt_from), 22 characters."""
    if not 4 <= cost <= 31:
        raise AnsibleFilterError(f"bcrypt_hash: cost {cost} is outside 4..31")
    raw = hashlib.sha256(salt_from.encode()).digest()[:16]
    encoded = base64.b64encode(raw).rstrip(b"=").translate(_TO_BCRYPT)
    return b"$2b$%02d$" % cost + encoded


def bcrypt_hash(password: str, salt_from: str, cost: int = 12) -> str:
    """password | bcrypt_hash(inventory_hostname ~ ':' ~ user) -> "$2b$12$...", every run alike."""
    if not password:
        raise AnsibleFilterError("bcrypt_hash: the password is empty")
    if not salt_from:
        raise AnsibleFilterError("bcrypt_hash: name what the salt is made from")
    secret = str(password).encode()
    if len(secret) > MAX_PASSWORD_BYTES:
        raise AnsibleFilterError(
            f"bcrypt_hash: bcrypt reads at most {MAX_PASSWORD_BYTES} bytes of a password"
        )
    return bcrypt.hashpw(secret, bcrypt_salt(str(salt_from), int(cost))).decode()


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"bcrypt_hash": bcrypt_hash}
