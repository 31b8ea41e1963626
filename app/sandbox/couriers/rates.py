"""The couriers' rate cards, coverage and customs rules (plain data, no HTTP)."""

from __future__ import annotations

import math
from dataclasses import dataclass


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


EU = _codes("AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE")
EUROPE_NON_EU = _codes("GB CH NO IS MD RS ME MK AL BA GE UA")
WORLD = _codes("US CA MX BR AR CL AU NZ JP KR CN SG IN AE IL TR ZA")
ZONES = ("domestic", "europe", "world")


def zone_of(origin: str, destination: str) -> str | None:
    """Rate zone of a destination seen from `origin`; None when it is not served."""
    if destination == origin:
        return "domestic"
    if destination in EU or destination in EUROPE_NON_EU:
        return "europe"
    if destination in WORLD:
        return "world"
    return None


def needs_customs(origin: str, destination: str) -> bool:
    """Every parcel leaving the origin's customs territory needs a declaration."""
    same_union = origin in EU and destination in EU
    return destination != origin and not same_union


@dataclass(frozen=True)
class Service:
    name: str
    base_minor: dict[str, int]  # per zone
    per_kg_minor: dict[str, int]  # per started kilogram, per zone
    days: dict[str, int]
    max_weight_grams: int

    def price(self, zone: str, weight_grams: int) -> int:
        return self.base_minor[zone] + self.per_kg_minor[zone] * math.ceil(weight_grams / 1000)


@dataclass(frozen=True)
class Courier:
    name: str
    tracking_prefix: str
    services: dict[str, Service]


COURIERS: dict[str, Courier] = {
    "swiftpost": Courier(
        name="swiftpost",
        tracking_prefix="SP",
        services={
            "economy": Service(
                "economy",
                base_minor={"domestic": 300, "europe": 1200, "world": 2500},
                per_kg_minor={"domestic": 50, "europe": 400, "world": 900},
                days={"domestic": 2, "europe": 7, "world": 14},
                max_weight_grams=30_000,
            ),
        },
    ),
    "globex": Courier(
        name="globex",
        tracking_prefix="GX",
        services={
            "standard": Service(
                "standard",
                base_minor={"domestic": 500, "europe": 1800, "world": 3200},
                per_kg_minor={"domestic": 80, "europe": 500, "world": 1100},
                days={"domestic": 2, "europe": 5, "world": 8},
                max_weight_grams=70_000,
            ),
            "express": Service(
                "express",
                base_minor={"domestic": 900, "europe": 2900, "world": 4900},
                per_kg_minor={"domestic": 150, "europe": 700, "world": 1500},
                days={"domestic": 1, "europe": 3, "world": 5},
                max_weight_grams=70_000,
            ),
        },
    ),
}
