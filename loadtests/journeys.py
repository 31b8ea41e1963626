"""Shopper journeys as Locust users: anonymous browsers and registered buyers with TOTP.

Task weights follow real shop traffic: most requests view and browse products,
fewer search or touch the cart, few check out. Every request is named by its
route template (loadtests.routes) so statistics group per route, and every
response is checked for the status and shape a shopper relies on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import uuid
from collections.abc import Callable
from typing import Any

import gevent
import gevent.lock
import pyotp
from locust import FastHttpUser, task
from locust.exception import RescheduleTask

from loadtests import ledger, routes
from loadtests.catalog import TestCatalog, build_catalog, product_count
from loadtests.config import load_profiles
from loadtests.routes import Route
from loadtests.safety import DEFAULT_TARGET
from loadtests.totp import unused_counter

TRAFFIC = load_profiles().traffic
_CATALOG_LOCK = gevent.lock.Semaphore()  # the first shopper builds it, the others wait

_CATALOGS: dict[str, TestCatalog] = {}


def catalog_for(host: str) -> TestCatalog:
    """The test catalog for `host`, built once per process without stalling the event loop."""
    with _CATALOG_LOCK:
        if host not in _CATALOGS:
            products = product_count(host)  # network: cooperative under gevent
            # CPU-bound (the seed generator, ~0.5 s for 10,000 products): in a native
            # thread, so the loop keeps serving heartbeats and other shoppers meanwhile.
            _CATALOGS[host] = gevent.get_hub().threadpool.apply(build_catalog, (products,))
        return _CATALOGS[host]


PAYMENT_TOKEN_PREFIX = {"card": "tok_lt_", "wallet": "wallet_lt_", "crypto": "crypto_lt_"}
# A real customer does not place a fourth order within the hour; the shop's fraud
# velocity rules would rightly challenge one who did. A registered shopper who has
# bought this often leaves, and a new customer (new account, card, address) arrives.
ORDERS_PER_CUSTOMER = 3
# A basket, not a warehouse: a shopper whose checkouts keep failing (a drill's fault)
# tries again with the cart as it is instead of filling it until no courier takes it.
MAX_CART_LINES = 4
# What customers were told, for the drills (loadtests/ledger.py); None outside a drill.
LEDGER = ledger.from_env()
# Each shopper browses from its own address (RFC 2544 benchmarking range), sent as
# X-Forwarded-For: the shop trusts it from loopback and the lab edge, and per-IP
# throttles and fraud rules then see many customers, as in production.
SHOPPER_NETWORK = ipaddress.ip_network("198.18.0.0/15")
PASSWORD_PREFIX = "Load-test-"  # noqa: S105 - only a prefix; each shopper adds a random part


def shopper_address() -> str:
    return str(SHOPPER_NETWORK[random.randrange(1, SHOPPER_NETWORK.num_addresses - 1)])


def _placed_or_step_up(answer: Any) -> str | None:
    """A checkout answer a real shopper can go on from: an order, or a step-up request."""
    if "id" in answer:
        return None
    code = (answer.get("error") or {}).get("code")
    return None if code == "step_up_required" else f"checkout refused: {code or answer}"


def _offers_shipping(quote: Any) -> str | None:
    """A quote a shopper can go on from names at least one shipping option."""
    if quote.get("options"):
        return None
    return "no shipping option offered for this cart and address"


def think_time(_user: Any = None) -> float:
    low, high = TRAFFIC.think_time_s
    return random.uniform(low, high)


class Shopper(FastHttpUser):
    """What every shopper does: browse, view products, search, fill a cart."""

    abstract = True
    host = DEFAULT_TARGET
    wait_time = think_time
    # A shopper's browser keeps its connections; a failed one must not hang the run.
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.catalog: TestCatalog = catalog_for(self.host)
        self.cart_id: str | None = None
        self.token: str | None = None
        self.cart_skus: set[str] = set()
        self.client_ip = shopper_address()

    # --- plumbing --------------------------------------------------------------

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "X-Forwarded-For": self.client_ip}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cart_id:
            headers["X-Cart-Id"] = self.cart_id
        return {**headers, **(extra or {})}

    def call(
        self,
        route: Route,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        expect: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """One request, named by `route`; a status not in `expect`, a non-JSON body or a
        body that `check` objects to (it returns what is wrong) fails it.

        Returns the decoded JSON (None for an empty body), or raises RescheduleTask
        after a failure so the journey does not go on with data it does not have.
        """
        with self.client.request(
            route.method,
            path,
            name=route.name,
            json=body,
            headers=self.headers(headers),
            catch_response=True,
        ) as response:
            if response.status_code not in expect:
                text = (response.text or "")[:200]
                response.failure(f"HTTP {response.status_code} {text}")
                raise RescheduleTask()
            if not response.content:
                response.success()
                return None
            try:
                data = response.json()
            except ValueError:
                response.failure("response is not JSON")
                raise RescheduleTask() from None
            problem = check(data) if check else None
            if problem:
                response.failure(problem)
                raise RescheduleTask()
            response.success()  # an expected 4xx too (Locust fails those by default)
            return data

    def think(self) -> None:
        """Pause between two steps of one journey, as between two tasks."""
        gevent.sleep(think_time())

    # --- browsing ----------------------------------------------------------------

    @task(30)
    def view_product(self) -> None:
        sku = self.catalog.popular_sku()
        self.call(
            routes.PRODUCT,
            f"/api/products/{sku}",
            check=lambda p: None if p.get("sku") == sku else f"asked for {sku}, got {p.get('sku')}",
        )

    @task(12)
    def browse_listing(self) -> None:
        page = self.catalog.listing_page()
        self.call(routes.BROWSE_PRODUCTS, f"/api/products?page={page}&page_size=20")

    @task(10)
    def browse_category(self) -> None:
        category = random.choice(self.catalog.categories)
        listing = self.call(routes.BROWSE_CATEGORY, f"/api/products?category={category}&page=1")
        if listing["items"]:
            self.think()
            sku = random.choice(listing["items"])["sku"]
            self.call(routes.PRODUCT, f"/api/products/{sku}")

    @task(3)
    def taxonomy(self) -> None:
        self.call(routes.CATEGORIES, "/api/categories")
        self.think()
        self.call(routes.BRANDS, "/api/brands")

    @task(10)
    def search(self) -> None:
        query = random.choice(self.catalog.search_terms)
        self.call(routes.SEARCH, f"/api/products?q={query}&page=1&page_size=20")

    # --- cart ----------------------------------------------------------------------

    def add_to_cart(self, sku: str, quantity: int = 1) -> None:
        cart = self.call(routes.CART_PUT, f"/api/cart/items/{sku}", body={"quantity": quantity})
        self.cart_id = cart["cart_id"]
        self.cart_skus.add(sku)

    @task(6)
    def put_in_cart(self) -> None:
        if len(self.cart_skus) >= MAX_CART_LINES:
            raise RescheduleTask()
        self.add_to_cart(self.catalog.stocked_sku())

    @task(4)
    def view_cart(self) -> None:
        cart = self.call(routes.CART, "/api/cart")
        self.cart_id = cart["cart_id"]

    @task(1)
    def remove_from_cart(self) -> None:
        if not self.cart_skus:
            raise RescheduleTask()
        sku = self.cart_skus.pop()
        self.call(routes.CART_DELETE, f"/api/cart/items/{sku}", expect=(200, 204))


class AnonymousShopper(Shopper):
    """Browses and fills a guest cart (X-Cart-Id) without logging in."""

    weight = max(1, round(100 * (1 - TRAFFIC.logged_in_share)))


class RegisteredShopper(Shopper):
    """Registers, enrols TOTP and logs in with it, then buys, tracks orders and logs in again."""

    weight = max(1, round(100 * TRAFFIC.logged_in_share))

    def on_start(self) -> None:
        super().on_start()
        self.new_customer()
        # A failed step is in the statistics; the next registered-shopper task resumes it.
        with contextlib.suppress(RescheduleTask):
            self.ensure_enrolled()
            # A registered shopper came to buy: the first thing they do is a purchase.
            self.purchase()

    def new_customer(self) -> None:
        """A new identity: account, TOTP device, payment token, address and connection."""
        shopper = uuid.uuid4().hex
        self.email = f"load-{shopper}@loadtest.example.com"
        self.password = PASSWORD_PREFIX + uuid.uuid4().hex
        self.payment_tokens = {c: p + shopper for c, p in PAYMENT_TOKEN_PREFIX.items()}
        self.address = self.catalog.address(shopper)
        self.client_ip = shopper_address()  # the new customer's own connection
        self.order_ids: list[int] = []
        self.registered = False
        self.token = None
        self.cart_id = None
        self.cart_skus.clear()
        self.totp: pyotp.TOTP | None = None
        self.totp_enabled = False
        self.last_totp_counter = -1

    def ensure_enrolled(self) -> None:
        """Register, log in, enrol TOTP; each step once, resumed after a failed one."""
        if not self.registered:
            self.call(
                routes.REGISTER,
                "/api/auth/register",
                body={"email": self.email, "password": self.password, "full_name": "Load Shopper"},
                expect=(201,),
            )
            self.registered = True
        if self.token is None:
            self.log_in()
        if self.totp is None:
            enrolment = self.call(
                routes.TOTP_ENROL,
                "/api/account/mfa/totp",
                body={"password": self.password},
                expect=(200, 201),
            )
            self.totp = pyotp.TOTP(enrolment["secret"])
        if not self.totp_enabled:
            self.call(
                routes.TOTP_VERIFY,
                "/api/account/mfa/totp/verify",
                body={"code": self.next_totp_code()},
                expect=(200, 204),
            )
            self.totp_enabled = True

    def password_login(self) -> dict[str, Any]:
        return self.call(
            routes.LOGIN,
            "/api/auth/login",
            body={"email": self.email, "password": self.password},
            check=lambda a: (
                None
                if a.get("access_token") or (self.totp_enabled and a.get("mfa_required"))
                else "no access token (or MFA step when TOTP is enrolled)"
            ),
        )

    def next_totp_code(self) -> str:
        """A code the shop accepts now and has not seen (loadtests/totp.py)."""
        assert self.totp is not None
        counter = unused_counter(self.totp, self.last_totp_counter)
        if counter is None:
            raise RescheduleTask()  # every acceptable code is used; try again later
        self.last_totp_counter = counter
        return self.totp.generate_otp(counter)

    def log_in(self) -> None:
        """Password, then (once TOTP is enrolled) the code from the authenticator."""
        answer = self.password_login()
        if answer.get("mfa_required"):
            self.think()  # reading the code off the phone
            answer = self.call(
                routes.LOGIN_MFA,
                "/api/auth/login/mfa",
                body={"mfa_token": answer["mfa_token"], "code": self.next_totp_code()},
                check=lambda a: None if a.get("access_token") else "no access token",
            )
        self.token = answer["access_token"]

    @task(2)
    def login_with_totp(self) -> None:
        self.ensure_enrolled()
        assert self.totp is not None
        if unused_counter(self.totp, self.last_totp_counter) is None:
            raise RescheduleTask()  # every acceptable code is used; log in again later
        self.token = None
        self.log_in()

    @task(3)
    def checkout(self) -> None:
        if len(self.order_ids) >= ORDERS_PER_CUSTOMER:
            self.new_customer()
        self.ensure_enrolled()
        self.purchase()

    def purchase(self) -> None:
        for _ in range(random.choice((1, 1, 2))):
            if len(self.cart_skus) >= MAX_CART_LINES:
                break
            self.add_to_cart(self.catalog.stocked_sku())
            self.think()
        self.call(routes.CART, "/api/cart")
        self.think()
        quote = self.call(
            routes.QUOTE,
            "/api/checkout/quote",
            body={"country": self.address["country"], "postal_code": self.address["postal_code"]},
            check=_offers_shipping,
        )
        option = random.choice(quote["options"])["id"]
        self.think()
        channel = random.choices(("card", "wallet", "crypto"), weights=(80, 15, 5))[0]
        body = {
            "address": self.address,
            "shipping_option": option,
            "payment": {"channel": channel, "token": self.payment_tokens[channel]},
        }
        attempt = {"Idempotency-Key": str(uuid.uuid4())}
        if LEDGER:
            LEDGER.checkout_attempted(attempt["Idempotency-Key"])
        order = self.call(
            routes.CHECKOUT,
            "/api/checkout",
            body=body,
            headers=attempt,
            expect=(201, 202, 403),
            check=_placed_or_step_up,
        )
        if "id" not in order:
            # The risk check asks for proof (a new account's large order, say): the
            # shopper reads the code off the phone and sends the same attempt with it.
            self.think()
            order = self.call(
                routes.CHECKOUT,
                "/api/checkout",
                body={**body, "totp_code": self.next_totp_code()},
                headers=attempt,
                expect=(201, 202),
            )
        if LEDGER:
            # 202: placed, the payment's answer lost; the shop settles it and mails the outcome.
            if order.get("status") == "pending_payment":
                LEDGER.checkout_pending(attempt["Idempotency-Key"], order["id"])
            else:
                LEDGER.checkout_confirmed(attempt["Idempotency-Key"], order["id"])
        self.order_ids.append(order["id"])
        self.cart_skus.clear()

    @task(3)
    def track_order(self) -> None:
        self.ensure_enrolled()
        if not self.order_ids:
            raise RescheduleTask()
        order_id = random.choice(self.order_ids)
        self.call(routes.ORDER, f"/api/orders/{order_id}")
        self.think()
        self.call(routes.TRACKING, f"/api/orders/{order_id}/tracking")

    @task(2)
    def order_history(self) -> None:
        self.ensure_enrolled()
        self.call(routes.ORDERS, "/api/orders?page=1")

    @task(1)
    def account(self) -> None:
        self.ensure_enrolled()
        self.call(routes.ACCOUNT, "/api/account")
