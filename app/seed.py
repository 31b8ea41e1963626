"""Deterministic catalog generator: `python -m app.seed [--products N] [--seed S] [--if-empty]`.

The same seed gives the same catalog on every run and backend: SKUs
SKU-000001 ... SKU-0NNNNN, prices, weights, HS codes, stock in three
warehouses, and a skewed sales history (so there are best-sellers). Rows go in
with bulk inserts (executemany), so 10,000 products take seconds.

Without --if-empty the catalog, orders, carts and users are wiped first. An
admin account is created from SHOP_ADMIN_EMAIL / SHOP_ADMIN_PASSWORD; when no
password is given a random one is generated and printed once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import time
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.migrate import upgrade_to_head
from app.db.models import (
    Address,
    AuthToken,
    Brand,
    Cart,
    CartItem,
    Category,
    LoginThrottle,
    Order,
    OrderAllocation,
    OrderEvent,
    OrderLine,
    Product,
    ProductToken,
    Stock,
    User,
    Warehouse,
)
from app.db.session import Database
from app.domain.accounts import hash_password, normalize_email
from app.domain.admin import search_tokens
from app.settings import get_settings

BATCH = 2_000


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
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not secrets
    categories = [{"id": i, "slug": c.slug, "name": c.name} for i, c in enumerate(CATEGORIES, 1)]
    brands = [{"id": i, "slug": _slug(b), "name": b} for i, b in enumerate(BRANDS, 1)]
    warehouses = [
        {"id": i, "code": code, "name": name, "country": country, "priority": priority}
        for i, (code, name, country, priority) in enumerate(WAREHOUSES, 1)
    ]
    product_rows: list[dict[str, object]] = []
    token_rows: list[dict[str, object]] = []
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
        token_rows.extend(
            {"token": t, "product_id": pid}
            for t in search_tokens(name, BRANDS[brand_index], spec.name)
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
        "product_tokens": token_rows,
        "stock": stock_rows,
    }


async def _bulk(conn: AsyncConnection, model: type, rows: list[dict[str, object]]) -> None:
    for start in range(0, len(rows), BATCH):
        await conn.execute(insert(model), rows[start : start + BATCH])


WIPE_ORDER = (
    OrderAllocation,
    OrderEvent,
    OrderLine,
    Order,
    CartItem,
    Cart,
    Address,
    AuthToken,
    LoginThrottle,
    User,
    Stock,
    ProductToken,
    Product,
    Brand,
    Category,
    Warehouse,
)


async def seed(
    db: Database, *, products: int, seed_value: int, currency: str, if_empty: bool
) -> int:
    async with db.write_engine.begin() as conn:
        existing = (await conn.execute(select(func.count()).select_from(Product))).scalar_one()
        if existing and if_empty:
            return 0
        for model in WIPE_ORDER:
            await conn.execute(delete(model))
        data = generate(products, seed_value, currency)
        await _bulk(conn, Category, data["categories"])
        await _bulk(conn, Brand, data["brands"])
        await _bulk(conn, Warehouse, data["warehouses"])
        await _bulk(conn, Product, data["products"])
        await _bulk(conn, ProductToken, data["product_tokens"])
        await _bulk(conn, Stock, data["stock"])
        if conn.dialect.name == "postgresql":
            # Ids were given explicitly: move each sequence past them.
            for table in ("categories", "brands", "warehouses", "products"):
                await conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - fixed names
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    return products


async def ensure_admin(db: Database, email: str, password: str | None) -> str | None:
    """Create the admin account if missing. Returns a generated password to show once."""
    email = normalize_email(email)
    async with db.read() as session:
        if (await session.execute(select(User.id).where(User.email == email))).first():
            return None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(18)
    async with db.write() as session:
        session.add(
            User(
                email=email,
                password_hash=await hash_password(password),
                full_name="Shop admin",
                role="admin",
            )
        )
    return generated


async def _main(args: argparse.Namespace) -> int:
    settings = get_settings()
    await asyncio.to_thread(upgrade_to_head, settings.database_url)
    db = Database(settings.database_url)
    try:
        started = time.perf_counter()
        count = await seed(
            db,
            products=args.products,
            seed_value=args.seed,
            currency=settings.currency,
            if_empty=args.if_empty,
        )
        if count:
            print(
                f"seeded {count} products in {time.perf_counter() - started:.1f}s", file=sys.stderr
            )
        else:
            print("catalog already seeded; left as it is", file=sys.stderr)
        email = os.environ.get("SHOP_ADMIN_EMAIL", "admin@shop.example")
        generated = await ensure_admin(db, email, os.environ.get("SHOP_ADMIN_PASSWORD"))
        if generated:
            print(
                f"admin account {email} created; password (shown once): {generated}",
                file=sys.stderr,
            )
    finally:
        await db.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.seed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--products", type=int, default=10_000, help="how many products (default 10000)"
    )
    parser.add_argument(
        "--seed", type=int, default=20_240_824, help="random seed (same seed, same catalog)"
    )
    parser.add_argument("--if-empty", action="store_true", help="do nothing when products exist")
    args = parser.parse_args(argv)
    if args.products < 1:
        parser.error("--products must be at least 1")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
