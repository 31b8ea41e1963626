"""Known answers for the card-data guard: the sandbox and the shop, each on its own, agree.

The payment sandbox refuses raw card numbers with its own check
(app/sandbox/payments/card_data.py), the shop with app/partners/payments/pci.py;
neither imports the other. Every sample's answer is written out here (checked
by hand against the Luhn rule), so a change to either side fails.
"""

from __future__ import annotations

import random

import pytest

from app.partners.payments.pci import looks_like_card_number as shop_refuses
from app.sandbox.payments.card_data import contains_card_number as sandbox_refuses
from app.sandbox.payments.ledger import RawCardData, check_token

# Luhn-valid runs of 13-19 digits, bare, grouped, or inside a token-shaped string.
CARD_NUMBERS = [
    "4111111111111111",  # Visa test card, 16 digits
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "378282246310005",  # Amex test card, 15 digits
    "5555555555554444",  # Mastercard test card
    "4012888888881881",  # Visa test card: 8s in the doubled positions
    "4988438843884305",  # Visa test card: 9s and 8s doubled
    "6011111111111117",  # Discover test card
    "3530111333300000",  # JCB test card
    "4222222222222",  # 13 digits, the shortest
    "6304000000000000000",  # 19 digits, the longest
    "tok_4111-1111-1111-1111",  # a valid token shape: only the card check stops it
    "card4111111111111111end",
]

# Not card numbers: bad check digit, too short, broken runs, ordinary tokens.
NOT_CARD_NUMBERS = [
    "tok_visa",
    "tok_chargeDeclinedInsufficientFunds",
    "wallet_acct_20240101",
    "4111111111111112",  # check digit off by one
    "4012888888881882",
    "4000056655665556789",  # 19 digits, Luhn-invalid
    "411111111117",  # Luhn-valid but 12 digits
    "tok_411111111117",
    "4111  1111 1111 1111",  # two separators break the run: 4 + 12 digits
    "4111--1111-1111-1111",
    "4111_1111_1111_1111",  # '_' is not a separator
    "4111.1111.1111.1111",
]


@pytest.mark.parametrize("text", CARD_NUMBERS)
def test_both_sides_refuse_the_card_number(text: str):
    assert shop_refuses(text) is True
    assert sandbox_refuses(text) is True
    with pytest.raises(RawCardData):
        check_token(text)


@pytest.mark.parametrize("text", NOT_CARD_NUMBERS)
def test_neither_side_takes_it_for_a_card_number(text: str):
    assert shop_refuses(text) is False
    assert sandbox_refuses(text) is False
    try:
        check_token(text)
    except RawCardData:
        pytest.fail(f"the sandbox took {text!r} for a card number")
    except ValueError:
        pass  # not a valid token shape either (e.g. starts with a digit): a different refusal


def test_both_sides_agree_on_random_digit_heavy_text():
    """Beyond the samples: the same answer on 20 000 fixed pseudo-random strings."""
    rng = random.Random(20240601)
    alphabet = "0123456789" * 6 + "  --_ab\u0664"  # U+0664: an Arabic-Indic digit
    disagreements = []
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 48)))
        if shop_refuses(text) != sandbox_refuses(text):
            disagreements.append(text)
    assert disagreements == []
