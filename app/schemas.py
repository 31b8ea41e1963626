"""Request and response shapes of the HTTP API (they also make /openapi.json).

Every free-text input goes through `_clean_text`: no NUL bytes, no lone surrogates,
no control characters. PostgreSQL refuses NUL in text, and a lone surrogate
cannot be encoded to UTF-8, so either would otherwise surface as a 500.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Literal

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

MAX_MINOR_UNITS = 10**11  # 1 000 000 000.00: above any real price or order


def _clean_text(value: str) -> str:
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            raise ValueError("text contains an unpaired surrogate")
        if category == "Cc" and char not in "\n\t":
            raise ValueError("text contains a control character")
    return value


def _country(value: str) -> str:
    if pycountry.countries.get(alpha_2=value) is None:
        raise ValueError(f"unknown country code {value!r} (ISO 3166-1 alpha-2)")
    return value


_CLEAN = AfterValidator(_clean_text)


def _limits(max_length: int, min_length: int = 1) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


Name = Annotated[str, _limits(200), _CLEAN]
OptionalLine = Annotated[str, _limits(200, min_length=0), _CLEAN]
City = Annotated[str, _limits(100), _CLEAN]
Description = Annotated[str, _limits(5000, min_length=0), _CLEAN]
Note = Annotated[str, _limits(400, min_length=0), _CLEAN]


CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_country)]
Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
MinorUnits = Annotated[int, Field(ge=0, le=MAX_MINOR_UNITS)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Strict(BaseModel):
    """Request bodies: unknown fields and type coercion ("1", true, 1.0 for an int) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Money(BaseModel):
    amount: int = Field(description="integer minor units (cents)")
    currency: str


# --- catalog -------------------------------------------------------------------


class NamedRef(BaseModel):
    slug: str
    name: str


class WarehouseStock(BaseModel):
    warehouse: str
    country: str
    quantity: int


class ProductOut(BaseModel):
    sku: str
    name: str
    description: str
    category: NamedRef
    brand: NamedRef
    price: Money
    weight_grams: int
    hs_code: str
    origin_country: str
    stock: list[WarehouseStock]
    total_stock: int
    in_stock: bool


class ProductSummary(BaseModel):
    sku: str
    name: str
    category: str
    brand: str
    price: Money
    in_stock: bool


class ProductPage(BaseModel):
    items: list[ProductSummary]
    page: int
    page_size: int
    total: int


class TaxonomyOut(BaseModel):
    items: list[NamedRef]


# --- accounts ------------------------------------------------------------------

Password = Annotated[str, StringConstraints(min_length=10, max_length=256), _CLEAN]


class RegisterIn(Strict):
    email: EmailStr = Field(max_length=254)
    password: Password
    full_name: Name


class LoginIn(Strict):
    # Not validated as an address: a login only has to match an account.
    email: Annotated[str, StringConstraints(min_length=3, max_length=254), _CLEAN]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class MfaLoginIn(Strict):
    mfa_token: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]


class TotpCodeIn(Strict):
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]


class LoginOut(BaseModel):
    access_token: str | None = None
    token_type: str | None = None
    expires_in: int | None = None
    mfa_required: bool = False
    mfa_token: str | None = None


class TotpEnrolOut(BaseModel):
    secret: str
    otpauth_uri: str


class UserOut(BaseModel):
    id: int
    email: str
    full_name: str
    role: str
    mfa_enabled: bool
    created_at: datetime


class AddressIn(Strict):
    full_name: Name
    line1: Name
    line2: OptionalLine = ""
    city: City
    postal_code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]{1,11}$")]
    country: CountryCode
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{5,24}$")] | None = None


class AddressOut(AddressIn):
    model_config = ConfigDict(extra="ignore")
    id: int


# --- cart ------------------------------------------------------------------------


class CartQuantityIn(Strict):
    quantity: int = Field(ge=1, description="units of this SKU in the cart (upper bound: settings)")


class CartLine(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: Money
    line_total: Money


class CartOut(BaseModel):
    cart_id: str
    items: list[CartLine]
    item_count: int
    subtotal: Money


# --- checkout and orders -----------------------------------------------------------


class QuoteIn(Strict):
    country: CountryCode
    postal_code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]{1,11}$")]


class ShippingOptionOut(BaseModel):
    id: str
    courier: str
    service: str
    price: Money
    estimated_days: int


class QuoteOut(BaseModel):
    options: list[ShippingOptionOut]


class PaymentIn(Strict):
    channel: Literal["card", "wallet", "crypto"]
    token: Annotated[
        str, StringConstraints(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")
    ]


class CheckoutIn(Strict):
    address: AddressIn
    shipping_option: Annotated[str, StringConstraints(min_length=3, max_length=80)]
    payment: PaymentIn
    billing_country: CountryCode | None = Field(
        default=None,
        description="country of the payment method's billing address (default: the"
        " shipping country)",
    )
    totp_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")] | None = Field(
        default=None,
        description="the customer's current TOTP code; required when the risk check answers "
        "403 step_up_required",
    )


class OrderLineOut(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: Money
    hs_code: str


class OrderEventOut(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    note: str
    at: datetime


class OrderOut(BaseModel):
    id: int
    reference: str
    status: str
    lines: list[OrderLineOut]
    subtotal: Money
    shipping: Money
    total: Money
    shipping_option: str
    shipping_address: dict[str, str | None]
    payment_channel: str
    payment_provider: str | None
    courier: str | None
    tracking_number: str | None
    created_at: datetime
    updated_at: datetime
    events: list[OrderEventOut]


class OrderList(BaseModel):
    items: list[OrderOut]
    page: int
    page_size: int
    total: int


class TrackingEventOut(BaseModel):
    status: str
    at: datetime
    location: str = ""
    description: str = ""


class TrackingOut(BaseModel):
    order_id: int
    status: str
    courier: str | None
    tracking_number: str | None
    events: list[TrackingEventOut]


class TransitionIn(Strict):
    to: Literal[
        "pending_payment", "paid", "packed", "shipped", "delivered", "cancelled", "refunded"
    ]
    note: Note = ""


# --- admin -------------------------------------------------------------------------


class ProductCreateIn(Strict):
    sku: Sku
    name: Name
    description: Description = ""
    category: Slug
    brand: Slug
    price: MinorUnits
    weight_grams: int = Field(gt=0, le=1_000_000)
    hs_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,10}$")]
    origin_country: CountryCode = "UA"


class ProductUpdateIn(Strict):
    name: Name | None = None
    description: Description | None = None
    category: Slug | None = None
    brand: Slug | None = None
    price: MinorUnits | None = None
    weight_grams: int | None = Field(default=None, gt=0, le=1_000_000)
    hs_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,10}$")] | None = None
    origin_country: CountryCode | None = None


class StockSetIn(Strict):
    warehouse: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9-]{1,16}$")]
    quantity: int = Field(ge=0, le=1_000_000)


class AdminUserOut(UserOut):
    is_active: bool
    locked_until: datetime | None = None


class AdminUserList(BaseModel):
    items: list[AdminUserOut]
    page: int
    page_size: int
    total: int
