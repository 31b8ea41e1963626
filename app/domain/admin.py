"""Back-office writes: products, prices, stock, users. Each write invalidates the catalog cache."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    Brand,
    Category,
    LoginThrottle,
    Product,
    ProductToken,
    Stock,
    User,
    Warehouse,
)
from app.db.session import Database
from app.domain import catalog, throttle
from app.domain.cache import CatalogCache
from app.domain.tokens import tokenize
from app.errors import Conflict, InvalidRequest, NotFound
from app.schemas import (
    AdminUserList,
    AdminUserOut,
    ProductCreateIn,
    ProductOut,
    ProductUpdateIn,
    StockSetIn,
)


def search_tokens(name: str, brand_name: str, category_name: str) -> list[str]:
    return tokenize(f"{name} {brand_name} {category_name}")


async def _named(
    session: AsyncSession, model: type[Category] | type[Brand], slug: str
) -> Category | Brand:
    row = (await session.execute(select(model).where(model.slug == slug))).scalar_one_or_none()
    if row is None:
        row = model(slug=slug, name=slug.replace("-", " ").title())
        session.add(row)
        await session.flush()
    return row


async def _reindex(
    session: AsyncSession, product: Product, brand: Brand, category: Category
) -> None:
    await session.execute(delete(ProductToken).where(ProductToken.product_id == product.id))
    session.add_all(
        ProductToken(token=t, product_id=product.id)
        for t in search_tokens(product.name, brand.name, category.name)
    )


async def create_product(
    db: Database, cache: CatalogCache, data: ProductCreateIn, currency: str
) -> ProductOut:
    try:
        async with db.write() as session:
            category = await _named(session, Category, data.category)
            brand = await _named(session, Brand, data.brand)
            product = Product(
                sku=data.sku,
                name=data.name,
                description=data.description,
                category_id=category.id,
                brand_id=brand.id,
                price_minor=data.price,
                currency=currency,
                weight_grams=data.weight_grams,
                hs_code=data.hs_code,
                origin_country=data.origin_country,
            )
            session.add(product)
            await session.flush()
            await _reindex(session, product, brand, category)
            await session.flush()
            view = await catalog.load_product(session, product.sku)
    except IntegrityError:
        raise Conflict(f"a product with SKU {data.sku!r} already exists") from None
    await catalog.invalidate(cache, data.sku)
    assert view is not None
    return view


async def update_product(
    db: Database, cache: CatalogCache, sku: str, data: ProductUpdateIn
) -> ProductOut:
    changes = data.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidRequest("nothing to change: send at least one field")
    async with db.write() as session:
        product = (
            await session.execute(select(Product).where(Product.sku == sku))
        ).scalar_one_or_none()
        if product is None:
            raise NotFound(f"no product with SKU {sku!r}", sku=sku)
        if (slug := changes.pop("category", None)) is not None:
            product.category_id = (await _named(session, Category, slug)).id
        if (slug := changes.pop("brand", None)) is not None:
            product.brand_id = (await _named(session, Brand, slug)).id
        if (price := changes.pop("price", None)) is not None:
            product.price_minor = price
        for field, value in changes.items():
            if value is None:
                raise InvalidRequest(f"{field}: may not be null")
            setattr(product, field, value)
        await session.flush()
        brand = await session.get(Brand, product.brand_id)
        category = await session.get(Category, product.category_id)
        assert brand is not None and category is not None
        await _reindex(session, product, brand, category)
        await session.flush()
        view = await catalog.load_product(session, sku)
    await catalog.invalidate(cache, sku)
    assert view is not None
    return view


async def set_stock(db: Database, cache: CatalogCache, sku: str, data: StockSetIn) -> ProductOut:
    async with db.write() as session:
        product = (
            await session.execute(select(Product).where(Product.sku == sku))
        ).scalar_one_or_none()
        if product is None:
            raise NotFound(f"no product with SKU {sku!r}", sku=sku)
        warehouse = (
            await session.execute(select(Warehouse).where(Warehouse.code == data.warehouse))
        ).scalar_one_or_none()
        if warehouse is None:
            codes = (
                await session.execute(select(Warehouse.code).order_by(Warehouse.code))
            ).scalars()
            raise InvalidRequest(f"unknown warehouse {data.warehouse!r}; known: {', '.join(codes)}")
        row = await session.get(Stock, (product.id, warehouse.id))
        if row is None:
            session.add(
                Stock(product_id=product.id, warehouse_id=warehouse.id, quantity=data.quantity)
            )
        else:
            row.quantity = data.quantity
        await session.flush()
        view = await catalog.load_product(session, sku)
    await catalog.invalidate(cache, sku)
    assert view is not None
    return view


async def list_users(
    db: Database, *, page: int, page_size: int, email: str | None
) -> AdminUserList:
    stmt = select(User)
    if email:
        stmt = stmt.where(User.email == email.strip().lower())
    async with db.read() as session:
        total = (
            await session.execute(select(func.count()).select_from(stmt.subquery()))
        ).scalar_one()
        users = list(
            (
                await session.execute(
                    stmt.order_by(User.id).limit(page_size).offset((page - 1) * page_size)
                )
            ).scalars()
        )
        locks = {
            row.key: row.locked_until
            for row in (
                await session.execute(
                    select(LoginThrottle).where(
                        LoginThrottle.key.in_([throttle.account_key(u.email) for u in users])
                    )
                )
            ).scalars()
        }
    return AdminUserList(
        items=[
            AdminUserOut(
                id=u.id,
                email=u.email,
                full_name=u.full_name,
                role=u.role,
                mfa_enabled=u.totp_enabled,
                created_at=u.created_at,
                is_active=u.is_active,
                locked_until=locks.get(throttle.account_key(u.email)),
            )
            for u in users
        ],
        page=page,
        page_size=page_size,
        total=total,
    )


async def unlock_user(db: Database, user_id: int) -> None:
    async with db.write() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        await throttle.unlock(session, user.email)
