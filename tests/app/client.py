"""A small HTTP client of the shop API for tests: accounts, admin set-up, cart, checkout."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp

from loadtests.totp import unused_counter
from tests.conftest import ShopServer

ADDRESS = {
    "full_name": "Olena Test",
    "line1": "Hauptstrasse 1",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}
APPROVED_CARD = "tok_visa"
SHIPPING_OPTION = "globex:standard"  # offered by the courier sandbox to ADDRESS


PASSWORD = "correct horse battery"  # every test customer's, unless a test chooses another


def unique_email(prefix: str = "customer") -> str:
    return f"{prefix}-{secrets.token_hex(6)}@example.com"


# The admin's authenticator per shop (by URL): the back office needs TOTP.
_ADMIN_TOTP: dict[str, pyotp.TOTP] = {}
_LAST_COUNTER: dict[str, int] = {}


def next_code(shop_url: str, totp: pyotp.TOTP) -> str:
    """A code the shop accepts now and has not seen yet (loadtests/totp.py); waits for the
    next 30 s step when both acceptable codes are used."""
    counter = unused_counter(totp, _LAST_COUNTER.get(shop_url, -1))
    while counter is None:
        time.sleep(1)
        counter = unused_counter(totp, _LAST_COUNTER[shop_url])
    _LAST_COUNTER[shop_url] = counter
    return totp.generate_otp(counter)


def unique_sku(prefix: str = "T") -> str:
    return f"{prefix}-{secrets.token_hex(5).upper()}"


@dataclass
class ShopClient:
    http: httpx.AsyncClient
    shop: ShopServer

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def register(self, email: str | None = None, password: str = PASSWORD) -> str:
        email = email or unique_email()
        response = await self.http.post(
            "/api/auth/register",
            json={"email": email, "password": password, "full_name": "Test Customer"},
        )
        assert response.status_code == 201, response.text
        return email

    async def login(self, email: str, password: str = PASSWORD) -> str:
        response = await self.http.post(
            "/api/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def start_totp(self, token: str, password: str = PASSWORD) -> httpx.Response:
        """POST /api/account/mfa/totp: a new secret, after the password again."""
        return await self.http.post(
            "/api/account/mfa/totp", json={"password": password}, headers=self.auth(token)
        )

    async def customer(self) -> str:
        """Register a new customer and return an access token."""
        return await self.login(await self.register())

    async def admin(self) -> str:
        """The admin's access token: password, then TOTP (enrolled on first use per shop)."""
        if self.shop.admin_token is None:
            self.shop.admin_token = await self.admin_login()
        return self.shop.admin_token

    async def admin_login(self) -> str:
        url = self.shop.url
        response = await self.http.post(
            "/api/auth/login",
            json={"email": self.shop.admin_email, "password": self.shop.admin_password},
        )
        assert response.status_code == 200, response.text
        step = response.json()
        if step.get("mfa_required"):
            totp = _ADMIN_TOTP[url]
            done = await self.http.post(
                "/api/auth/login/mfa",
                json={"mfa_token": step["mfa_token"], "code": next_code(url, totp)},
            )
            assert done.status_code == 200, done.text
            return done.json()["access_token"]
        token = step["access_token"]
        enrol = await self.start_totp(token, self.shop.admin_password)
        assert enrol.status_code == 200, enrol.text
        totp = _ADMIN_TOTP[url] = pyotp.TOTP(enrol.json()["secret"])
        verified = await self.http.post(
            "/api/account/mfa/totp/verify",
            json={"code": next_code(url, totp)},
            headers=self.auth(token),
        )
        assert verified.status_code == 200, verified.text
        return token

    async def create_product(
        self, admin_token: str, *, stock: dict[str, int], price: int = 1999, **fields: Any
    ) -> str:
        sku = fields.pop("sku", None) or unique_sku()
        body = {
            "sku": sku,
            "name": fields.pop("name", f"Test product {sku}"),
            "category": "ceramics",
            "brand": "karpaty-craft",
            "price": price,
            "weight_grams": 400,
            "hs_code": "691200",
            **fields,
        }
        response = await self.http.post(
            "/api/admin/products", json=body, headers=self.auth(admin_token)
        )
        assert response.status_code == 201, response.text
        for warehouse, quantity in stock.items():
            response = await self.http.put(
                f"/api/admin/products/{sku}/stock",
                json={"warehouse": warehouse, "quantity": quantity},
                headers=self.auth(admin_token),
            )
            assert response.status_code == 200, response.text
        return sku

    async def add_to_cart(self, token: str, sku: str, quantity: int = 1) -> httpx.Response:
        return await self.http.put(
            f"/api/cart/items/{sku}", json={"quantity": quantity}, headers=self.auth(token)
        )

    async def checkout(
        self,
        token: str,
        *,
        payment_token: str = APPROVED_CARD,
        channel: str = "card",
        shipping_option: str = SHIPPING_OPTION,
        key: str | None = None,
        **fields: Any,
    ) -> httpx.Response:
        return await self.http.post(
            "/api/checkout",
            json={
                "address": ADDRESS,
                "shipping_option": shipping_option,
                "payment": {"channel": channel, "token": payment_token},
                **fields,
            },
            headers={**self.auth(token), "Idempotency-Key": key or secrets.token_hex(12)},
        )

    async def product(self, sku: str) -> dict[str, Any]:
        """The product as stored now (the back office read: uncached)."""
        admin = await self.admin()
        response = await self.http.get(f"/api/admin/products/{sku}", headers=self.auth(admin))
        assert response.status_code == 200, response.text
        return response.json()
