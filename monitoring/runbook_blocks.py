"""The command blocks of a runbook page, as marked in runbooks/ (runbooks/README.md).

Every fenced block's info string is its language, then what it is for: ```` ```bash
diagnosis ````, ```` ```sql mitigation ````. The tests check every block is marked and runs;
the drills (drills/runbook.py) run the mitigation blocks from the page itself, so a
runbook that stops working fails a drill.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

# Fenced blocks, also those indented under a list item (the mitigation steps).
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)(?: (?P<kind>[\w-]+))?\n(?P<body>.*?)^(?P=indent)```",
    re.MULTILINE | re.DOTALL,
)
BLOCK_KINDS = ("diagnosis", "mitigation")


@dataclass(frozen=True)
class Block:
    lang: str
    kind: str  # "" when the info string says nothing after the language
    body: str  # dedented
    section: str  # the `## ` heading it is under


def marked_blocks(path: Path) -> list[Block]:
    """Every fenced block of the page, in order."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in FENCE.finditer(text):
        headings = re.findall(r"^## (.+)$", text[: m.start()], re.MULTILINE)
        section = headings[-1].strip() if headings else ""
        blocks.append(Block(m["lang"], m["kind"] or "", textwrap.dedent(m["body"]), section))
    return blocks


def blocks_of(path: Path, lang: str, kind: str) -> list[Block]:
    return [b for b in marked_blocks(path) if (b.lang, b.kind) == (lang, kind)]
