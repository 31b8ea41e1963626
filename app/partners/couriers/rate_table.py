"""The shop's own shipping rate table: a CourierGateway that quotes from a per-zone table.

Many export shops quote this way (a published tariff by destination zone and
weight step) and buy labels separately. The shop uses the courier APIs
(`COURIER_BACKEND=partners`, the default); this table is the explicit fallback
(`COURIER_BACKEND=rate_table`) when no courier API is reachable or contracted.
Shipments it creates get a shop-issued tracking number; it has no carrier
tracking feed.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from app.partners.interfaces import Parcel, Shipment, ShippingQuote, TrackingEvent

COURIER = "shop-post"

# Destinations the shop does not ship to (sanctions and embargoes).
EMBARGOED = frozenset({"RU", "BY", "KP", "IR", "SY", "CU"})

EU = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()  # noqa: SIM905
)
EUROPE_OTHER = frozenset(
    [
        "GB",
        "CH",
        "NO",
        "IS",
        "LI",
        "MD",
        "GE",
        "AL",
        "BA",
        "ME",
        "MK",
        "RS",
        "TR",
        "AD",
        "MC",
        "SM",
        "VA",
    ]
)
NORTH_AMERICA = frozenset({"US", "CA", "MX"})


@dataclass(frozen=True)
class Tariff:
    base_minor: int
    per_kg_minor: int
    days: int


# zone -> service -> tariff (EUR minor units)
RATES: dict[str, dict[str, Tariff]] = {
    "domestic": {"standard": Tariff(300, 50, 2), "express": Tariff(700, 100, 1)},
    "eu": {"standard": Tariff(900, 250, 5), "express": Tariff(2400, 500, 2)},
    "europe": {"standard": Tariff(1200, 300, 7), "express": Tariff(2900, 600, 3)},
    "north_america": {"standard": Tariff(1900, 600, 10), "express": Tariff(4500, 1100, 4)},
    "world": {"standard": Tariff(2400, 800, 14), "express": Tariff(5500, 1400, 6)},
}


def zone_of(country: str, origin: str) -> str | None:
    if country in EMBARGOED:
        return None
    if country == origin:
        return "domestic"
    if country in EU:
        return "eu"
    if country in EUROPE_OTHER:
        return "europe"
    if country in NORTH_AMERICA:
        return "north_america"
    return "world"


class RateTableCourier:
    def __init__(self, *, origin_country: str, currency: str) -> None:
        self.origin_country = origin_country
        self.currency = currency

    async def quote(self, parcel: Parcel) -> list[ShippingQuote]:
        zone = zone_of(parcel.destination_country, self.origin_country)
        if zone is None:
            return []
        kilos = max(1, math.ceil(parcel.weight_grams / 1000))
        return [
            ShippingQuote(
                courier=COURIER,
                service=service,
                amount_minor=tariff.base_minor + tariff.per_kg_minor * (kilos - 1),
                currency=self.currency,
                estimated_days=tariff.days,
            )
            for service, tariff in RATES[zone].items()
        ]

    async def create_shipment(
        self, *, option_id: str, parcel: Parcel, order_reference: str, address: dict[str, str]
    ) -> Shipment:
        return Shipment(courier=COURIER, tracking_number=f"SP{secrets.token_hex(6).upper()}")

    async def tracking(self, *, courier: str, tracking_number: str) -> list[TrackingEvent]:
        return []
