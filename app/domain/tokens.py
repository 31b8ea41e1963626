"""Keyword tokens for catalog search: lowercased, accent-free words of letters and digits.

The same function tokenizes product text when it is written and queries when
they are read, so both sides always agree. A query word matches a product
token it is a prefix of ("lamp" finds "lamps").
"""

from __future__ import annotations

import re
import unicodedata

MAX_TOKEN_LENGTH = 32
_WORD = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    seen: dict[str, None] = {}
    for word in _WORD.findall(folded):
        seen.setdefault(word[:MAX_TOKEN_LENGTH], None)
    return list(seen)


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix` (code-point order)."""
    last = prefix[-1]
    if ord(last) >= 0x10FFFF:
        return prefix + "\U0010ffff"
    return prefix[:-1] + chr(ord(last) + 1)
