"""The shop's deterministic sample catalog: the same seed gives the same rows, everywhere.

`python -m app.seed` loads these rows into the shop's database, and the load
tests (loadtests.catalog) regenerate them to know what the target sells: SKUs
SKU-000001 ... SKU-0NNNNN, names, prices, weights, HS codes, stock in three
warehouses and a skewed sales history (so there are best-sellers). Products are
drawn one after another from one `random.Random(seed)`, so product N depends
only on the seed and N, and a catalog of 300 products is the first 300 of the
10,000 one: the load tests need nothing but the target's product count.

Pure Python with no import of the shop (`app`): Locust workers import it
without paying the app's start-up (seconds of CPU that would stall their
heartbeats to the master), and `loadtests` never imports the app at all.
The shop's search tokens for these products are the seeder's business
(app.seed), not part of the generated catalog.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# The seed `python -m app.seed` uses unless given --seed; the load tests assume it.
DEFAULT_SEED = 20_240_824


@dataclass(frozen=True)
class CategorySpec:
    slug: str
    name: str
    hs_code: str
    nouns: tuple[str, ...]
    price_range: tuple[int, int]  # minor units
    weight_range: tuple[int, int]  # grams


CATEGORIES = (
    CategorySpec(
        "ceramics",
        "Ceramics",
        "691200",
        ("Mug", "Bowl", "Plate", "Vase", "Teapot", "Jug"),
        (900, 9_000),
        (250, 2_500),
    ),
    CategorySpec(
        "textiles",
        "Textiles",
        "630492",
        ("Tablecloth", "Towel", "Cushion Cover", "Blanket", "Runner"),
        (1_200, 15_000),
        (200, 1_800),
    ),
    CategorySpec(
        "embroidery",
        "Embroidered Clothing",
        "620640",
        ("Vyshyvanka Shirt", "Blouse", "Dress", "Scarf", "Belt"),
        (3_500, 42_000),
        (150, 900),
    ),
    CategorySpec(
        "honey",
        "Honey and Preserves",
        "040900",
        ("Buckwheat Honey", "Linden Honey", "Jam", "Honeycomb", "Berry Preserve"),
        (600, 4_500),
        (300, 1_200),
    ),
    CategorySpec(
        "tea",
        "Herbal Tea",
        "121190",
        ("Herbal Tea", "Mint Blend", "Chamomile Tea", "Sea Buckthorn Tea"),
        (400, 2_500),
        (50, 400),
    ),
    CategorySpec(
        "woodwork",
        "Woodwork",
        "441990",
        ("Cutting Board", "Spoon Set", "Box", "Toy Horse", "Frame"),
        (800, 12_000),
        (150, 3_000),
    ),
    CategorySpec(
        "jewellery",
        "Jewellery",
        "711719",
        ("Necklace", "Bracelet", "Earrings", "Ring", "Brooch"),
        (1_500, 30_000),
        (10, 200),
    ),
    CategorySpec(
        "toys",
        "Toys",
        "950300",
        ("Rag Doll", "Puzzle", "Wooden Train", "Motanka Doll", "Rattle"),
        (700, 6_000),
        (80, 1_500),
    ),
    CategorySpec(
        "books",
        "Books",
        "490199",
        ("Cookbook", "Poetry Collection", "Atlas", "Novel", "Phrasebook"),
        (900, 5_500),
        (200, 1_400),
    ),
    CategorySpec(
        "art",
        "Art Prints",
        "491191",
        ("Print", "Poster", "Postcard Set", "Calendar", "Petrykivka Painting"),
        (500, 25_000),
        (50, 2_000),
    ),
    CategorySpec(
        "cosmetics",
        "Natural Cosmetics",
        "330499",
        ("Soap", "Face Cream", "Lip Balm", "Body Oil", "Bath Salt"),
        (400, 3_800),
        (40, 500),
    ),
    CategorySpec(
        "kitchen",
        "Kitchenware",
        "732393",
        ("Pan", "Pot", "Kettle", "Grater", "Knife"),
        (1_500, 16_000),
        (300, 4_000),
    ),
    CategorySpec(
        "leather",
        "Leather Goods",
        "420221",
        ("Wallet", "Bag", "Belt", "Card Holder", "Notebook Cover"),
        (1_800, 24_000),
        (80, 1_600),
    ),
    CategorySpec(
        "candles",
        "Candles",
        "340600",
        ("Beeswax Candle", "Candle Set", "Tealights", "Pillar Candle"),
        (300, 3_000),
        (60, 900),
    ),
    CategorySpec(
        "glass",
        "Glassware",
        "701349",
        ("Glass", "Decanter", "Carafe", "Ornament", "Bottle"),
        (800, 9_500),
        (150, 1_800),
    ),
)
ADJECTIVES = (
    "Handmade",
    "Carpathian",
    "Poltava",
    "Hutsul",
    "Classic",
    "Rustic",
    "Blue",
    "Golden",
    "Linen",
    "Oak",
    "Red",
    "Sunflower",
    "Wheat",
    "Forest",
    "Dnipro",
    "Kyiv",
    "Lviv",
    "Odesa",
    "Petrykivka",
    "Vintage",
    "Organic",
    "Painted",
    "Small",
    "Large",
    "Family",
    "Festive",
)
BRANDS = (
    "Karpaty Craft",
    "Dnipro Home",
    "Lviv Atelier",
    "Poltava Pottery",
    "Hutsul House",
    "Kobzar",
    "Sonyah",
    "Zernya",
    "Bdzhilka",
    "Yalynka",
    "Kozak",
    "Chumak",
    "Vyshyvanka Co",
    "Soloma",
    "Mriya",
    "Vatra",
    "Verba",
    "Kalyna",
    "Barvinok",
    "Dibrova",
    "Polissia",
    "Podillia",
    "Tavria",
    "Slobozhanka",
    "Volyn Works",
    "Bukovyna",
    "Zakarpattia",
    "Stepova",
    "Riviera",
    "Maysternia",
    "Glyna",
    "Derevo",
    "Shovk",
    "Lyon",
    "Med i Mak",
    "Chaika",
    "Lastivka",
    "Sokil",
    "Bereh",
    "Svitanok",
)
WAREHOUSES = (
    ("WH-KYIV", "Kyiv fulfilment centre", "UA", 0),
    ("WH-LVIV", "Lviv cross-border hub", "UA", 1),
    ("WH-WAW", "Warsaw EU stock", "PL", 2),
)


def _slug(name: str) -> str:
    return "-".join(name.lower().replace("'", "").split())


def generate(products: int, seed: int, currency: str) -> dict[str, list[dict[str, object]]]:
    """The catalog's rows by table: categories, brands, warehouses, products, stock.

    Products get ids 1..`products`; every value comes from `random.Random(seed)`,
    drawn product after product.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not secrets
    categories = [{"id": i, "slug": c.slug, "name": c.name} for i, c in enumerate(CATEGORIES, 1)]
    brands = [{"id": i, "slug": _slug(b), "name": b} for i, b in enumerate(BRANDS, 1)]
    warehouses = [
        {"id": i, "code": code, "name": name, "country": country, "priority": priority}
        for i, (code, name, country, priority) in enumerate(WAREHOUSES, 1)
    ]
    product_rows: list[dict[str, object]] = []
    stock_rows: list[dict[str, object]] = []
    for pid in range(1, products + 1):
        category_index = rng.randrange(len(CATEGORIES))
        spec = CATEGORIES[category_index]
        brand_index = rng.randrange(len(BRANDS))
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(spec.nouns)} {rng.randint(1, 999)}"
        low, high = spec.price_range
        price = rng.randint(low // 10, high // 10) * 10 - 1  # x.x9 prices
        product_rows.append(
            {
                "id": pid,
                "sku": f"SKU-{pid:06d}",
                "name": name,
                "description": f"{name} by {BRANDS[brand_index]}. {spec.name} made in Ukraine.",
                "category_id": category_index + 1,
                "brand_id": brand_index + 1,
                "price_minor": max(price, 99),
                "currency": currency,
                "weight_grams": rng.randint(*spec.weight_range),
                "hs_code": spec.hs_code,
                "origin_country": "UA",
                # Pareto-like sales: a few best-sellers, a long tail.
                "sales_count": int(rng.paretovariate(1.2) * 3) if rng.random() < 0.6 else 0,
            }
        )
        for wid in range(1, len(WAREHOUSES) + 1):
            if rng.random() < 0.75:
                stock_rows.append(
                    {
                        "product_id": pid,
                        "warehouse_id": wid,
                        "quantity": rng.choice((0, 1, 2, 5, 10, 25, 50, 100, 250)),
                    }
                )
    return {
        "categories": categories,
        "brands": brands,
        "warehouses": warehouses,
        "products": product_rows,
        "stock": stock_rows,
    }
