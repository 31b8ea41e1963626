"""Known answer for the webhook signature: the sandbox and the shop, each on its own, agree.

The sandbox signs with its own code (app/sandbox/webhook_sender.py), the shop
with app/partners/webhooks.py; neither imports the other. The expected header
was computed once outside both (Python's hmac, and `openssl dgst -sha256
-hmac`), and is written out here, so a change to either side's scheme fails.
"""

from __future__ import annotations

import pytest

from app.partners import webhooks as shop
from app.sandbox import webhook_sender as sandbox

SECRET = "whsec_known_answer_0123456789"
TIMESTAMP = 1700000000
BODY = (
    b'{"id":"evt_known_answer","type":"charge.succeeded","created":1700000000,'
    b'"data":{"amount_minor":1200,"currency":"EUR"}}'
)
EXPECTED_HEADER = "t=1700000000,v1=e2f8b209aa76d3c39aa8bfb42b13429f82e566f90da0e7610300bd5b3c19d772"


def test_both_sides_name_the_same_header():
    assert sandbox.SIGNATURE_HEADER == "Webhook-Signature"
    assert shop.SIGNATURE_HEADER == "Webhook-Signature"


def test_the_sandbox_signs_to_the_known_answer():
    assert sandbox.signature_header(BODY, SECRET, TIMESTAMP) == EXPECTED_HEADER


def test_the_shop_signs_to_the_known_answer():
    assert shop.sign(BODY, SECRET, timestamp=TIMESTAMP) == EXPECTED_HEADER


def test_the_shop_accepts_the_known_answer():
    shop.verify(BODY, EXPECTED_HEADER, SECRET, now=TIMESTAMP)  # raises if refused


@pytest.mark.parametrize("position", range(len(BODY)))
def test_the_shop_refuses_the_body_changed_in_one_byte(position: int):
    altered = bytearray(BODY)
    altered[position] ^= 0x01
    with pytest.raises(shop.WebhookVerificationError, match="does not match"):
        shop.verify(bytes(altered), EXPECTED_HEADER, SECRET, now=TIMESTAMP)


@pytest.mark.parametrize("position", range(len("t=1700000000,v1="), len(EXPECTED_HEADER)))
def test_the_shop_refuses_the_digest_changed_in_one_byte(position: int):
    replacement = "1" if EXPECTED_HEADER[position] == "0" else "0"
    altered = EXPECTED_HEADER[:position] + replacement + EXPECTED_HEADER[position + 1 :]
    with pytest.raises(shop.WebhookVerificationError, match="does not match"):
        shop.verify(BODY, altered, SECRET, now=TIMESTAMP)


def test_the_shop_refuses_another_timestamp_with_the_same_digest():
    altered = EXPECTED_HEADER.replace("t=1700000000", "t=1700000001")
    with pytest.raises(shop.WebhookVerificationError, match="does not match"):
        shop.verify(BODY, altered, SECRET, now=TIMESTAMP)


def test_the_shop_refuses_another_secret():
    with pytest.raises(shop.WebhookVerificationError, match="does not match"):
        shop.verify(BODY, EXPECTED_HEADER, SECRET + "x", now=TIMESTAMP)


def test_neither_side_signs_without_a_secret():
    with pytest.raises(ValueError):
        sandbox.signature_header(BODY, "", TIMESTAMP)
    with pytest.raises(ValueError):
        shop.sign(BODY, "", timestamp=TIMESTAMP)
