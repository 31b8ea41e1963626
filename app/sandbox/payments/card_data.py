"""The providers' own card-data guard: a raw card number (PAN) sent as a token is refused.

Written for the sandbox on its own (it does not reuse the shop's check), after
the partners' rule: a run of 13-19 digits, each optionally preceded by one
space or hyphen, whose Luhn checksum is valid, is a card number.

The text is scanned left to right. A run starts at a digit and takes at most
19 digits; scanning goes on after the last digit taken, so a longer run is
judged by its first 19 digits, then by what follows.
"""

from __future__ import annotations

from collections.abc import Iterator

MIN_PAN_DIGITS = 13
MAX_PAN_DIGITS = 19
SEPARATORS = frozenset(" -")

# What a digit adds to the Luhn sum when it sits in a doubled position.
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_checksum_ok(digits: list[int]) -> bool:
    """True when the last digit is the Luhn check digit of the others."""
    total = 0
    doubled = False  # the rightmost digit (the check digit) is not doubled
    for digit in reversed(digits):
        total += _DOUBLED[digit] if doubled else digit
        doubled = not doubled
    return total % 10 == 0


def _digit_runs(text: str) -> Iterator[list[int]]:
    position, length = 0, len(text)
    while position < length:
        if not text[position].isdecimal():
            position += 1
            continue
        run = [int(text[position])]
        end = position + 1
        while len(run) < MAX_PAN_DIGITS:
            following = end + 1 if end < length and text[end] in SEPARATORS else end
            if following < length and text[following].isdecimal():
                run.append(int(text[following]))
                end = following + 1
            else:
                break
        yield run
        position = end


def contains_card_number(text: str) -> bool:
    """True when `text` holds something that would be a card number."""
    return any(len(run) >= MIN_PAN_DIGITS and luhn_checksum_ok(run) for run in _digit_runs(text))
