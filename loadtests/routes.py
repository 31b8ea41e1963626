"""Every request the journeys make: its statistics name (the route template) and its journey.

Statistics group by these names, and the per-journey SLO gates merge the
routes of one journey. A test checks each path here against the shop's
/openapi.json, so a renamed route fails the suite instead of a load run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    name: str  # route template; search and category listings keep their query to group apart
    journey: str

    @property
    def path(self) -> str:
        return self.name.split("?", 1)[0]


BROWSE_PRODUCTS = Route("GET", "/api/products", "browse")
BROWSE_CATEGORY = Route("GET", "/api/products?category={category}", "browse")
CATEGORIES = Route("GET", "/api/categories", "browse")
BRANDS = Route("GET", "/api/brands", "browse")
PRODUCT = Route("GET", "/api/products/{sku}", "product")
SEARCH = Route("GET", "/api/products?q={query}", "search")
CART = Route("GET", "/api/cart", "cart")
CART_PUT = Route("PUT", "/api/cart/items/{sku}", "cart")
CART_DELETE = Route("DELETE", "/api/cart/items/{sku}", "cart")
QUOTE = Route("POST", "/api/checkout/quote", "checkout")
CHECKOUT = Route("POST", "/api/checkout", "checkout")
ORDERS = Route("GET", "/api/orders", "orders")
ORDER = Route("GET", "/api/orders/{order_id}", "orders")
TRACKING = Route("GET", "/api/orders/{order_id}/tracking", "orders")
REGISTER = Route("POST", "/api/auth/register", "account")
ACCOUNT = Route("GET", "/api/account", "account")
ADDRESSES = Route("POST", "/api/account/addresses", "account")
TOTP_ENROL = Route("POST", "/api/account/mfa/totp", "account")
TOTP_VERIFY = Route("POST", "/api/account/mfa/totp/verify", "account")
LOGIN = Route("POST", "/api/auth/login", "login")
LOGIN_MFA = Route("POST", "/api/auth/login/mfa", "login")

ROUTES: tuple[Route, ...] = (
    BROWSE_PRODUCTS,
    BROWSE_CATEGORY,
    CATEGORIES,
    BRANDS,
    PRODUCT,
    SEARCH,
    CART,
    CART_PUT,
    CART_DELETE,
    QUOTE,
    CHECKOUT,
    ORDERS,
    ORDER,
    TRACKING,
    REGISTER,
    ACCOUNT,
    ADDRESSES,
    TOTP_ENROL,
    TOTP_VERIFY,
    LOGIN,
    LOGIN_MFA,
)

JOURNEYS: tuple[str, ...] = tuple(sorted({r.journey for r in ROUTES}))
# Requests under a name not in ROUTES (a journey bug) still count, in this journey.
OTHER_JOURNEY = "other"

_BY_KEY = {(r.method, r.name): r.journey for r in ROUTES}


def journey_of(method: str, name: str) -> str:
    return _BY_KEY.get((method, name), OTHER_JOURNEY)
