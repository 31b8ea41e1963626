"""The TOTP code a client sends (loadtests/totp.py): the current step's or the next one's,
never the previous one's, and never a step already used."""

from __future__ import annotations

import pyotp

from loadtests.totp import unused_counter

TOTP = pyotp.TOTP(pyotp.random_base32())
STEP = 1_000_000  # a 30 s step number, far from the epoch


def at(counter: int, seconds_into_step: float) -> float:
    return counter * TOTP.interval + seconds_into_step


def test_a_fresh_client_sends_the_current_step_even_at_its_last_second() -> None:
    assert unused_counter(TOTP, -1, now=at(STEP, 0.0)) == STEP
    assert unused_counter(TOTP, -1, now=at(STEP, 29.9)) == STEP


def test_the_next_step_once_the_current_one_is_used() -> None:
    assert unused_counter(TOTP, STEP, now=at(STEP, 10.0)) == STEP + 1


def test_none_once_both_are_used_so_the_client_waits() -> None:
    assert unused_counter(TOTP, STEP + 1, now=at(STEP, 10.0)) is None
    assert unused_counter(TOTP, STEP + 1, now=at(STEP + 1, 0.0)) == STEP + 2


def test_never_the_previous_step_which_expires_at_the_next_boundary() -> None:
    for last in (-1, STEP - 2, STEP - 1):
        assert unused_counter(TOTP, last, now=at(STEP, 5.0)) == STEP
