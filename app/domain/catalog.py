"""Catalog reads (product page, search, categories, brands) behind the read cache,
and the cache invalidation that catalog writes call.

Cached values are the finished JSON bodies: a cache hit costs one dictionary
(or Redis) look-up and no serialization.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Brand, Category, Product, ProductToken, Stock, Warehouse
from app.db.session import Database
from app.domain.cache import CatalogCache
from app.domain.errors import InvalidRequest, NotFound
from app.domain.tokens import prefix_upper_bound, tokenize
from app.observability import metrics
from app.schemas import (
    Money,
    NamedRef,
    ProductOut,
    ProductPage,
    ProductSummary,
    TaxonomyOut,
    WarehouseStock,
)

# A query's words after the first MAX_QUERY_TOKENS (distinct, as tokenized) are not used:
# each word is one more index lookup, and eight already narrow any search.
MAX_QUERY_TOKENS = 8
MAX_RESULT_WINDOW = 10_000  # page * page_size: deeper offsets are refused, not slowly served
MAX_PAGE_SIZE = 100
MAX_PAGE = MAX_RESULT_WINDOW // MAX_PAGE_SIZE  # so that any page of any size is in the window


@dataclass(frozen=True)
class SearchParams:
    q: str | None = None
    category: str | None = None
    brand: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    sort: str = "relevance"
    page: int = 1
    page_size: int = 20

    def cache_key(self) -> str:
        raw = orjson.dumps(self.__dict__, option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(raw, digest_size=16).hexdigest()


def product_key(sku: str) -> str:
    return f"product:{sku}"


async def _count(cache_name: str, hit: bool) -> None:
    metrics.cache_requests_total.labels(cache_name, "hit" if hit else "miss").inc()


async def load_product(session: AsyncSession, sku: str) -> ProductOut | None:
    row = (
        await session.execute(
            select(Product, Category, Brand)
            .join(Category, Product.category_id == Category.id)
            .join(Brand, Product.brand_id == Brand.id)
            .where(Product.sku == sku)
        )
    ).first()
    if row is None:
        return None
    product, category, brand = row
    stock_rows = (
        await session.execute(
            select(Warehouse.code, Warehouse.country, Stock.quantity)
            .join(Stock, Stock.warehouse_id == Warehouse.id)
            .where(Stock.product_id == product.id)
            .order_by(Warehouse.priority, Warehouse.code)
        )
    ).all()
    stock = [WarehouseStock(warehouse=c, country=k, quantity=q) for c, k, q in stock_rows]
    total = sum(s.quantity for s in stock)
    return ProductOut(
        sku=product.sku,
        name=product.name,
        description=product.description,
        category=NamedRef(slug=category.slug, name=category.name),
        brand=NamedRef(slug=brand.slug, name=brand.name),
        price=Money(amount=product.price_minor, currency=product.currency),
        weight_grams=product.weight_grams,
        hs_code=product.hs_code,
        origin_country=product.origin_country,
        stock=stock,
        total_stock=total,
        in_stock=total > 0,
    )


async def product_json(db: Database, cache: CatalogCache, sku: str) -> bytes:
    key = product_key(sku)
    cached = await cache.get(key)
    await _count("product", cached is not None)
    if cached is not None:
        return cached
    async with db.read() as session:
        product = await load_product(session, sku)
    if product is None:
        raise NotFound(f"no product with SKU {sku!r}", sku=sku)
    body = product.model_dump_json().encode()
    await cache.set(key, body)
    return body


def _search_statement(params: SearchParams) -> Select[tuple[int]]:
    stmt = select(Product.id)
    for token in tokenize(params.q or "")[:MAX_QUERY_TOKENS]:
        stmt = stmt.where(
            Product.id.in_(
                select(ProductToken.product_id).where(
                    ProductToken.token >= token, ProductToken.token < prefix_upper_bound(token)
                )
            )
        )
    if params.category:
        stmt = stmt.where(
            Product.category_id
            == select(Category.id).where(Category.slug == params.category).scalar_subquery()
        )
    if params.brand:
        stmt = stmt.where(
            Product.brand_id == select(Brand.id).where(Brand.slug == params.brand).scalar_subquery()
        )
    if params.min_price is not None:
        stmt = stmt.where(Product.price_minor >= params.min_price)
    if params.max_price is not None:
        stmt = stmt.where(Product.price_minor <= params.max_price)
    return stmt


_ORDERINGS = {
    "relevance": (Product.sales_count.desc(), Product.id),
    "price_asc": (Product.price_minor, Product.id),
    "price_desc": (Product.price_minor.desc(), Product.id),
    "newest": (Product.id.desc(),),
}


async def run_search(session: AsyncSession, params: SearchParams) -> ProductPage:
    if params.page * params.page_size > MAX_RESULT_WINDOW:
        raise InvalidRequest(
            f"page: results beyond the first {MAX_RESULT_WINDOW} are not served; narrow the search"
        )
    if (
        params.min_price is not None
        and params.max_price is not None
        and params.min_price > params.max_price
    ):  # no price is in an empty range: nothing to look up
        return ProductPage(items=[], page=params.page, page_size=params.page_size, total=0)
    matching = _search_statement(params)
    total = (
        await session.execute(select(func.count()).select_from(matching.subquery()))
    ).scalar_one()
    page_ids = (
        matching.order_by(*_ORDERINGS[params.sort])
        .limit(params.page_size)
        .offset((params.page - 1) * params.page_size)
    )
    ids = list((await session.execute(page_ids)).scalars())
    items: list[ProductSummary] = []
    if ids:
        rows = (
            await session.execute(
                select(
                    Product.id,
                    Product.sku,
                    Product.name,
                    Product.price_minor,
                    Product.currency,
                    Category.slug,
                    Brand.slug,
                )
                .join(Category, Product.category_id == Category.id)
                .join(Brand, Product.brand_id == Brand.id)
                .where(Product.id.in_(ids))
            )
        ).all()
        in_stock = set(
            (
                await session.execute(
                    select(Stock.product_id)
                    .where(Stock.product_id.in_(ids), Stock.quantity > 0)
                    .distinct()
                )
            ).scalars()
        )
        by_id = {row[0]: row for row in rows}
        for product_id in ids:
            _, sku, name, price, currency, category, brand = by_id[product_id]
            items.append(
                ProductSummary(
                    sku=sku,
                    name=name,
                    category=category,
                    brand=brand,
                    price=Money(amount=price, currency=currency),
                    in_stock=product_id in in_stock,
                )
            )
    return ProductPage(items=items, page=params.page, page_size=params.page_size, total=total)


async def search_json(db: Database, cache: CatalogCache, params: SearchParams) -> bytes:
    generation = await cache.generation()
    key = f"search:{generation}:{params.cache_key()}"
    cached = await cache.get(key) if generation >= 0 else None
    await _count("search", cached is not None)
    if cached is not None:
        return cached
    async with db.read() as session:
        page = await run_search(session, params)
    body = page.model_dump_json().encode()
    if generation >= 0:
        await cache.set(key, body)
    return body


async def taxonomy_json(db: Database, cache: CatalogCache, kind: str) -> bytes:
    model = {"categories": Category, "brands": Brand}[kind]
    generation = await cache.generation()
    key = f"taxonomy:{generation}:{kind}"
    cached = await cache.get(key) if generation >= 0 else None
    await _count("taxonomy", cached is not None)
    if cached is not None:
        return cached
    async with db.read() as session:
        rows = (await session.execute(select(model.slug, model.name).order_by(model.name))).all()
    body = TaxonomyOut(items=[NamedRef(slug=s, name=n) for s, n in rows]).model_dump_json().encode()
    if generation >= 0:
        await cache.set(key, body)
    return body


async def invalidate(cache: CatalogCache, *skus: str) -> None:
    """After a catalog write: drop the products' pages and retire every cached search."""
    await cache.delete(*(product_key(s) for s in skus))
    await cache.bump_generation()


BESTSELLER_COUNT = 20


async def count_bestsellers_out_of_stock(session: AsyncSession) -> int:
    top = (
        select(Product.id)
        .where(Product.sales_count > 0)
        .order_by(Product.sales_count.desc(), Product.id)
        .limit(BESTSELLER_COUNT)
        .subquery()
    )
    in_stock = (
        select(Stock.product_id).where(Stock.product_id == top.c.id, Stock.quantity > 0).exists()
    )
    stmt = select(func.count()).select_from(top).where(~in_stock)
    return int((await session.execute(stmt)).scalar_one())


async def invalidate_products(cache: CatalogCache, *skus: str) -> None:
    """After a stock change: drop the products' pages (searches keep their short TTL)."""
    await cache.delete(*(product_key(s) for s in skus))
