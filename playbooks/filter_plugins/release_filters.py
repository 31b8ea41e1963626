"""Jinja filters for releases built on the control node."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def source_digest(paths: list[str], length: int = 12) -> str:
    """A digest of every file under `paths` (names and contents): a source tree's release id."""
    digest = hashlib.sha256()
    for root in sorted(paths):
        base = Path(root)
        if not base.exists():
            raise AnsibleFilterError(f"source_digest: {root} does not exist")
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            if SKIPPED_PARTS.intersection(path.parts) or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(base.parent)).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:length]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"source_digest": source_digest}
