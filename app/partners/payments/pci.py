"""Keep card data out: the shop handles provider tokens only (PCI DSS scope stays out).

A string that holds a run of 13-19 digits passing the Luhn check is taken for a
card number, and is refused before it can reach a log line, a table or a wire.
"""

from __future__ import annotations

import re

_DIGIT_RUN = re.compile(r"\d(?:[ \-]?\d){12,18}")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and _luhn_valid(digits):
            return True
    return False
