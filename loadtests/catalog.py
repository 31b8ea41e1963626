"""Test data from the shop's own seed generator (seed_catalog), sized to the target's catalog.

`python -m app.seed` loads seed_catalog's deterministic rows: product N is
SKU-{N:06d} and its name, stock and sales history depend only on the seed and N
(the generator draws products one after another), so a catalog of 300 products
is the first 300 of the 10,000 one. We ask the target how many products it has
and regenerate the same rows here: popular SKUs are viewed most, purchases pick
SKUs seeded with plenty of stock, searches use words that match.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import ssl
import urllib.request
from dataclasses import dataclass
from functools import cache

import seed_catalog

# The seed `python -m app.seed` uses by default (its --seed); a test keeps them equal.
SEED = seed_catalog.DEFAULT_SEED
MIN_STOCK_TO_BUY = 50  # seeded units across warehouses; purchases take 1-2
# New accounts with large orders are a fraud signal; shoppers buy ordinary baskets.
MAX_PRICE_TO_BUY = 15_000
LAST_LISTING_PAGE = 20  # shoppers rarely page deeper

# Where export orders go (ISO country, city, postal code), weighted like export traffic.
DESTINATIONS = (
    ("DE", "Berlin", "10115", 22),
    ("PL", "Warszawa", "00-001", 18),
    ("US", "New York", "10001", 14),
    ("GB", "London", "SW1A 1AA", 10),
    ("FR", "Paris", "75001", 8),
    ("CA", "Toronto", "M5H 2N2", 6),
    ("NL", "Amsterdam", "1012 AB", 6),
    ("UA", "Kyiv", "01001", 6),
    ("IT", "Roma", "00184", 5),
    ("JP", "Tokyo", "100-0001", 5),
)


class CatalogUnavailable(RuntimeError):
    """The target's catalog could not be read (is it up and seeded?)."""


@dataclass(frozen=True)
class TestCatalog:
    skus: tuple[str, ...]
    popularity: tuple[float, ...]  # cumulative weights over `skus` (sales history + 1)
    stocked_skus: tuple[str, ...]
    categories: tuple[str, ...]
    search_terms: tuple[str, ...]
    listing_pages: int

    def popular_sku(self) -> str:
        """A product to view: best-sellers are viewed far more often than the long tail."""
        point = random.uniform(0, self.popularity[-1])
        return self.skus[bisect.bisect_left(self.popularity, point)]

    def stocked_sku(self) -> str:
        return random.choice(self.stocked_skus)

    def listing_page(self) -> int:
        """Page 1 most often, then fewer and fewer shoppers page on."""
        return min(int(random.expovariate(0.6)) + 1, self.listing_pages)

    @staticmethod
    def address(shopper: str) -> dict[str, str]:
        country, city, postal_code, _ = random.choices(
            DESTINATIONS, weights=[d[3] for d in DESTINATIONS]
        )[0]
        return {
            "full_name": f"Load Shopper {shopper[:12]}",
            "line1": f"{random.randint(1, 200)} Test Street",
            "line2": "",
            "city": city,
            "postal_code": postal_code,
            "country": country,
            "phone": "+49 30 1234567",
        }


@cache
def build_catalog(products: int, seed: int = SEED) -> TestCatalog:
    data = seed_catalog.generate(products, seed, "EUR")
    rows = data["products"]
    stock: dict[object, int] = {}
    for row in data["stock"]:
        stock[row["product_id"]] = stock.get(row["product_id"], 0) + int(row["quantity"])  # type: ignore[arg-type]
    skus = tuple(str(r["sku"]) for r in rows)
    weights = itertools.accumulate(int(r["sales_count"]) + 1 for r in rows)  # type: ignore[call-overload]
    stocked = tuple(
        str(r["sku"])
        for r in rows
        if stock.get(r["id"], 0) >= MIN_STOCK_TO_BUY and int(r["price_minor"]) <= MAX_PRICE_TO_BUY  # type: ignore[call-overload]
    )
    if not stocked:
        raise CatalogUnavailable(
            f"none of the {products} seeded products has {MIN_STOCK_TO_BUY} units"
        )
    words = sorted({w.lower() for r in rows for w in str(r["name"]).split() if w.isalpha()})
    return TestCatalog(
        skus=skus,
        popularity=tuple(float(w) for w in weights),
        stocked_skus=stocked,
        categories=tuple(str(c["slug"]) for c in data["categories"]),
        search_terms=tuple(words),
        listing_pages=max(1, min(LAST_LISTING_PAGE, products // 20)),
    )


def product_count(base_url: str) -> int:
    """How many products the target's catalog has (GET /api/products -> total)."""
    context = ssl.create_default_context()
    context.check_hostname = False  # the lab edge's certificate is self-signed
    context.verify_mode = ssl.CERT_NONE
    url = base_url.rstrip("/") + "/api/products?page=1&page_size=1"
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:  # noqa: S310 - vetted target
            total = int(json.load(response)["total"])
    except (OSError, ValueError, KeyError) as exc:
        raise CatalogUnavailable(f"cannot read the catalog size from {url}: {exc}") from exc
    if total < 1:
        raise CatalogUnavailable(f"{base_url} has an empty catalog; seed it (python -m app.seed)")
    return total


@cache
def catalog_for(base_url: str) -> TestCatalog:
    """The test catalog matching the target (computed once per process and target)."""
    return build_catalog(product_count(base_url))
