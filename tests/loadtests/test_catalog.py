"""Test data is the shop's own seed generator, sized to the target's catalog."""

from __future__ import annotations

import app.seed
from loadtests.catalog import (
    MAX_PRICE_TO_BUY,
    MIN_STOCK_TO_BUY,
    SEED,
    build_catalog,
)


def test_our_seed_is_the_seed_generators_default(monkeypatch):
    seen = {}

    async def capture(args):
        seen["seed"] = args.seed
        return 0

    monkeypatch.setattr(app.seed, "_main", capture)
    assert app.seed.main([]) == 0
    assert seen["seed"] == SEED


def test_a_small_catalog_is_the_start_of_a_large_one():
    """What lets us regenerate the target's rows from its product count alone."""
    small, large = app.seed.generate(50, SEED, "EUR"), app.seed.generate(200, SEED, "EUR")
    assert small["products"] == large["products"][:50]
    assert small["stock"] == [s for s in large["stock"] if s["product_id"] <= 50]


def test_catalog_contents():
    catalog = build_catalog(300)
    assert catalog.skus[0] == "SKU-000001" and catalog.skus[-1] == "SKU-000300"
    rows = {r["sku"]: r for r in app.seed.generate(300, SEED, "EUR")["products"]}
    stock: dict[object, int] = {}
    for s in app.seed.generate(300, SEED, "EUR")["stock"]:
        stock[s["product_id"]] = stock.get(s["product_id"], 0) + s["quantity"]
    assert catalog.stocked_skus
    for sku in catalog.stocked_skus:
        assert stock[rows[sku]["id"]] >= MIN_STOCK_TO_BUY
        assert rows[sku]["price_minor"] <= MAX_PRICE_TO_BUY
    assert {"ceramics", "honey"} <= set(catalog.categories)
    assert all(term.isalpha() and term == term.lower() for term in catalog.search_terms)
    assert 1 <= catalog.listing_page() <= catalog.listing_pages


def test_best_sellers_are_viewed_most():
    catalog = build_catalog(300)
    rows = app.seed.generate(300, SEED, "EUR")["products"]
    best = max(rows, key=lambda r: r["sales_count"])["sku"]
    views = [catalog.popular_sku() for _ in range(20_000)]
    never_sold = [r["sku"] for r in rows if r["sales_count"] == 0]
    assert views.count(best) > 5 * max(views.count(sku) for sku in never_sold)


def test_addresses_are_valid_checkout_addresses():
    from app.schemas import AddressIn

    for _ in range(50):
        AddressIn.model_validate(build_catalog(20).address("abc123"))
