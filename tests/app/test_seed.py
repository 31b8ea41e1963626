"""The catalog generator is deterministic and produces a usable catalog."""

from __future__ import annotations

from app.seed import generate
from seed_catalog import CATEGORIES, WAREHOUSES


def test_same_seed_same_catalog_other_seed_other_catalog() -> None:
    first = generate(10_000, seed=7, currency="EUR")
    assert generate(10_000, seed=7, currency="EUR") == first
    assert generate(10_000, seed=8, currency="EUR")["products"] != first["products"]


def test_catalog_is_complete_and_consistent() -> None:
    data = generate(10_000, seed=1, currency="EUR")
    products = data["products"]
    assert len(products) == 10_000
    assert len({p["sku"] for p in products}) == 10_000
    assert products[0]["sku"] == "SKU-000001" and products[-1]["sku"] == "SKU-010000"
    assert all(isinstance(p["price_minor"], int) and p["price_minor"] > 0 for p in products)
    assert {p["category_id"] for p in products} == set(range(1, len(CATEGORIES) + 1))
    assert {s["warehouse_id"] for s in data["stock"]} == set(range(1, len(WAREHOUSES) + 1))
    tokens_of_first = {t["token"] for t in data["product_tokens"] if t["product_id"] == 1}
    assert set(products[0]["name"].lower().split()) - {w for w in tokens_of_first} == set()
    assert sum(1 for p in products if p["sales_count"] > 0) > 1000  # there are best-sellers
