"""Request and response shapes of the HTTP API (they also make /openapi.json).

Every free-text input goes through `_clean_text`: no NUL bytes, no lone surrogates,
no control characters. PostgreSQL refuses NUL in text, and a lone surrogate
cannot be encoded to UTF-8, so either would otherwise surface as a 500.

What is checked is also what the document states, so that a request /openapi.json
allows is one the shop takes (tests/app/test_api_contract.py holds them to it): control
characters are excluded by the fields' `pattern`, a required text must have a visible
character, lengths count the text as sent (the surrounding blanks are dropped after the
check), country codes are the ISO 3166-1 list itself. A lone surrogate cannot be sent
in UTF-8 JSON at all except as an escape, so the pattern does not name it.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

import pycountry
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
)

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
_STRIP = AfterValidator(str.strip)

# The control characters `_clean_text` refuses (category Cc less tab and newline), and the
# blanks str.strip() drops that are not among them, as regex classes (ECMA-262, Python and
# Rust read these escapes alike).
_CONTROL = r"\u0000-\u0008\u000b-\u001f\u007f-\u009f"
_BLANK = r"\t\n \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_CONTROL = rf"^[^{_CONTROL}]*$"
VISIBLE = rf"^[^{_CONTROL}]*[^{_CONTROL}{_BLANK}][^{_CONTROL}]*$"  # ... and not blank


def _text(max_length: int, *, required: bool = True) -> StringConstraints:
    """Free text of at most `max_length` characters as sent (blanks around it are dropped
    after the check); `required`: with a visible character."""
    return StringConstraints(
        min_length=1 if required else 0,
        max_length=max_length,
        pattern=VISIBLE if required else NO_CONTROL,
    )


Name = Annotated[str, _text(200), _CLEAN, _STRIP]
OptionalLine = Annotated[str, _text(200, required=False), _CLEAN, _STRIP]
City = Annotated[str, _text(100), _CLEAN, _STRIP]
Description = Annotated[str, _text(5000, required=False), _CLEAN, _STRIP]
Note = Annotated[str, _text(400, required=False), _CLEAN, _STRIP]

COUNTRY_CODES = sorted(country.alpha_2 for country in pycountry.countries)
CountryCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}$"),
    Field(json_schema_extra={"enum": COUNTRY_CODES}),
    AfterValidator(_country),
]
Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


def _whole_number(value: Any) -> Any:
    # JSON has one number type: 1.0 is the integer 1 (JSON Schema's "integer" reads it so).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer of a request body: 1 or 1.0; not 1.5, "1" or true. (Bounds given in the
# same Annotated go before the validator, or pydantic leaves them out of the JSON schema.)
_WHOLE = BeforeValidator(_whole_number)
WholeNumber = Annotated[int, _WHOLE]
MinorUnits = Annotated[int, Field(ge=0, le=MAX_MINOR_UNITS), _WHOLE]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Strict(BaseModel):
    """Request bodies: unknown fields and type coercion ("1" or true for an int) are refused.

    (A whole number written 1.0 is the JSON number 1: `WholeNumber` fields take it.)"""

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

Password = Annotated[
    str, StringConstraints(min_length=10, max_length=256, pattern=NO_CONTROL), _CLEAN
]


def _any_case(word: str) -> str:
    return "".join(f"[{char.lower()}{char.upper()}]" for char in word)


# email-validator refuses addresses at special-use domains (RFC 6761: .test, .local, ...);
# the document says so (a lookahead: JSON Schema and Python read it; the check itself is
# email-validator's).
EMAIL_DOMAIN_IN_USE = (
    rf"^(?!.*[@.](?:{'|'.join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)})$)"
)


class RegisterIn(Strict):
    email: EmailStr = Field(max_length=254, json_schema_extra={"pattern": EMAIL_DOMAIN_IN_USE})
    password: Password
    full_name: Name


class LoginIn(Strict):
    # Not validated as an address: a login only has to match an account.
    email: Annotated[
        str, StringConstraints(min_length=3, max_length=254, pattern=NO_CONTROL), _CLEAN
    ]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class MfaLoginIn(Strict):
    mfa_token: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]


class TotpEnrolIn(Strict):
    # The account's password again: a stolen session alone cannot bind an attacker's device.
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


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


class RegisterOut(BaseModel):
    """The same whether or not the e-mail was already registered (no account enumeration)."""

    status: Literal["accepted"] = "accepted"
    message: str = (
        "registration received: log in with this e-mail and password "
        "(if the e-mail was already registered, the existing account is unchanged)"
    )


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
    # The upper bound is a setting (MAX_LINE_QUANTITY): app/api/openapi.py states it.
    quantity: WholeNumber = Field(ge=1, description="units of this SKU in the cart")


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
    weight_grams: WholeNumber = Field(gt=0, le=1_000_000)
    hs_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,10}$")]
    origin_country: CountryCode = "UA"


def _partial_update(schema: dict[str, Any]) -> None:
    """At least one field; a field's default is not a value one may send (absent means
    unchanged, and null is refused)."""
    schema["minProperties"] = 1
    for field in schema.get("properties", {}).values():
        field.pop("default", None)


class ProductUpdateIn(Strict):
    """The fields to change, at least one; a field left out keeps its value."""

    model_config = ConfigDict(json_schema_extra=_partial_update)

    name: Name = Field(default=None)
    description: Description = Field(default=None)
    category: Slug = Field(default=None)
    brand: Slug = Field(default=None)
    price: MinorUnits = Field(default=None)
    weight_grams: WholeNumber = Field(default=None, gt=0, le=1_000_000)
    hs_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,10}$")] = Field(default=None)
    origin_country: CountryCode = Field(default=None)


class StockSetIn(Strict):
    warehouse: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9-]{1,16}$")]
    quantity: WholeNumber = Field(ge=0, le=1_000_000)


class AdminUserOut(UserOut):
    is_active: bool
    locked_until: datetime | None = None


class AuditEntryOut(BaseModel):
    id: int
    actor_user_id: int | None
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    page: int
    page_size: int
    total: int


class AdminUserList(BaseModel):
    items: list[AdminUserOut]
    page: int
    page_size: int
    total: int
