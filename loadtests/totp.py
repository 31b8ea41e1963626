"""Which TOTP code a client sends: one the shop accepts now and has not seen yet.

The shop accepts one 30 s step either side of its clock and each step once. The
previous step's code expires at the next step boundary, which a request on a loaded
machine can cross on its way, so a client sends the current step's or the next one's
(both stay good for 30 s or more). The load tests and the test client both follow it.
"""

from __future__ import annotations

import time

import pyotp


def unused_counter(totp: pyotp.TOTP, last_counter: int, now: float | None = None) -> int | None:
    """The step to send a code for: the current or the next one, whichever is newer than
    `last_counter`; None when both are used (wait for the next step)."""
    current = totp.timecode(time.time() if now is None else now)
    for counter in (current, current + 1):
        if counter > last_counter:
            return counter
    return None
