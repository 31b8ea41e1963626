"""A runbook's mitigation, run from the page itself (runbooks/<Alert>.md), never a copy.

A drill names the page, the block's place among the page's ```bash mitigation blocks
(1 is the first) and a phrase the block must hold: when the page changes so that the
place points at another block, the drill fails instead of running the wrong command.
The block runs in the operator's shell (`python -m lab shell -c`), as an on-call
engineer would paste it.
"""

from __future__ import annotations

import time
from typing import Any

from monitoring import runbook_blocks

from . import lab_access

RUNBOOKS_DIR = lab_access.REPO / "runbooks"
BLOCK_TIMEOUT_S = 600


class RunbookError(RuntimeError):
    pass


def mitigation_block(page: str, place: int, expect: str) -> str:
    path = RUNBOOKS_DIR / f"{page}.md"
    if not path.exists():
        raise RunbookError(f"no runbook {path}")
    blocks = runbook_blocks.blocks_of(path, "bash", "mitigation")
    if not 1 <= place <= len(blocks):
        raise RunbookError(f"{path.name} has {len(blocks)} bash mitigation block(s), not {place}")
    body = blocks[place - 1].body
    if expect not in body:
        raise RunbookError(f"{path.name} mitigation block {place} no longer holds {expect!r}")
    return body


def run_mitigation(page: str, place: int, expect: str, *, check: bool = True) -> dict[str, Any]:
    """Run the block; with `check`, a failing block (exit status not 0) raises."""
    body = mitigation_block(page, place, expect)
    started = time.time()
    done = lab_access.operator_shell(body, BLOCK_TIMEOUT_S)
    outcome = {
        "runbook": f"{page}.md",
        "block": place,
        "command": body,
        "started_at": started,
        "seconds": round(time.time() - started, 1),
        "exit_code": done.returncode,
        "stdout": done.stdout[-4000:],
        "stderr": done.stderr[-4000:],
    }
    if check and done.returncode != 0:
        raise RunbookError(
            f"{page}.md mitigation block {place} exited {done.returncode}: {done.stderr[-1000:]}"
        )
    return outcome
