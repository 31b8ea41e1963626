"""Seed the shop's database: `python -m app.seed [--products N] [--seed S] [--if-empty]`.

The catalog comes from the deterministic generator in seed_catalog (shared with
the load tests): the same seed gives the same catalog on every run and backend.
Here it gets the shop's search tokens and goes in with bulk inserts
(executemany), so 10,000 products take seconds.

Without --if-empty the catalog, orders, carts and users are wiped first. An
admin account is created from SHOP_ADMIN_EMAIL / SHOP_ADMIN_PASSWORD; when no
password is given a random one is generated and printed once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

import seed_catalog
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


def generate(products: int, seed: int, currency: str) -> dict[str, list[dict[str, object]]]:
    """seed_catalog's rows plus the shop's search tokens of every product (product_tokens)."""
    catalog = seed_catalog.generate(products, seed, currency)
    category_names = {c["id"]: c["name"] for c in catalog["categories"]}
    brand_names = {b["id"]: b["name"] for b in catalog["brands"]}
    token_rows = [
        {"token": t, "product_id": p["id"]}
        for p in catalog["products"]
        for t in search_tokens(
            str(p["name"]), str(brand_names[p["brand_id"]]), str(category_names[p["category_id"]])
        )
    ]
    return {
        "categories": catalog["categories"],
        "brands": catalog["brands"],
        "warehouses": catalog["warehouses"],
        "products": catalog["products"],
        "product_tokens": token_rows,
        "stock": catalog["stock"],
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
        "--seed",
        type=int,
        default=seed_catalog.DEFAULT_SEED,
        help="random seed (same seed, same catalog)",
    )
    parser.add_argument("--if-empty", action="store_true", help="do nothing when products exist")
    args = parser.parse_args(argv)
    if args.products < 1:
        parser.error("--products must be at least 1")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
