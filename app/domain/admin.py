"""Back-office writes: products, prices, stock, users, order transitions. Each write
invalidates the catalog cache and is written to the audit log (who, what, before/after, when)
in the same transaction as the change (an order transition: right after it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    AuditLog,
    Brand,
    Category,
    Product,
    ProductToken,
    Stock,
    User,
    Warehouse,
)
from app.db.session import Database
from app.domain import catalog, fulfilment, orders, throttle
from app.domain.cache import CatalogCache
from app.domain.errors import Conflict, InvalidRequest, NotFound
from app.domain.tokens import tokenize
from app.schemas import (
    AdminUserList,
    AdminUserOut,
    AuditEntryOut,
    AuditPage,
    OrderOut,
    ProductCreateIn,
    ProductOut,
    ProductPage,
    ProductUpdateIn,
    StockSetIn,
)


def _audit(
    session: AsyncSession,
    actor: User,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    session.add(
        AuditLog(
            actor_user_id=actor.id,
            actor=actor.email,
            action=action,
            target=target,
            before=before,
            after=after,
        )
    )


def _snapshot(view: ProductOut | None) -> dict[str, Any] | None:
    return view.model_dump(mode="json") if view is not None else None


async def list_audit(db: Database, *, page: int, page_size: int) -> AuditPage:
    async with db.read() as session:
        total = (await session.execute(select(func.count()).select_from(AuditLog))).scalar_one()
        rows = (
            await session.execute(
                select(AuditLog)
                .order_by(AuditLog.id.desc())
                .limit(page_size)
                .offset((page - 1) * page_size)
            )
        ).scalars()
        items = [
            AuditEntryOut(
                id=r.id,
                actor_user_id=r.actor_user_id,
                actor=r.actor,
                action=r.action,
                target=r.target,
                before=r.before,
                after=r.after,
                created_at=r.created_at,
            )
            for r in rows
        ]
    return AuditPage(items=items, page=page, page_size=page_size, total=total)


async def search_products(db: Database, *, q: str | None, page: int, page_size: int) -> ProductPage:
    """The back office's product list: newest first, uncached."""
    async with db.read() as session:
        return await catalog.run_search(
            session, catalog.SearchParams(q=q, sort="newest", page=page, page_size=page_size)
        )


async def get_product(db: Database, sku: str) -> ProductOut:
    """One product as stored now (the back office never reads the cache)."""
    async with db.read() as session:
        product = await catalog.load_product(session, sku)
    if product is None:
        raise NotFound(f"no product with SKU {sku!r}", sku=sku)
    return product


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
    db: Database, cache: CatalogCache, data: ProductCreateIn, currency: str, actor: User
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
            _audit(session, actor, "product.create", f"product:{data.sku}", None, _snapshot(view))
    except IntegrityError:
        raise Conflict(f"a product with SKU {data.sku!r} already exists") from None
    await catalog.invalidate(cache, data.sku)
    assert view is not None
    return view


async def update_product(
    db: Database, cache: CatalogCache, sku: str, data: ProductUpdateIn, actor: User
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
        before = _snapshot(await catalog.load_product(session, sku))
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
        _audit(session, actor, "product.update", f"product:{sku}", before, _snapshot(view))
    await catalog.invalidate(cache, sku)
    assert view is not None
    return view


async def set_stock(
    db: Database, cache: CatalogCache, sku: str, data: StockSetIn, actor: User
) -> ProductOut:
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
            raise NotFound(
                f"no warehouse {data.warehouse!r}; known: {', '.join(codes)}",
                warehouse=data.warehouse,
            )
        row = await session.get(Stock, (product.id, warehouse.id))
        before = {"warehouse": warehouse.code, "quantity": row.quantity if row else None}
        if row is None:
            session.add(
                Stock(product_id=product.id, warehouse_id=warehouse.id, quantity=data.quantity)
            )
        else:
            row.quantity = data.quantity
        await session.flush()
        view = await catalog.load_product(session, sku)
        _audit(
            session,
            actor,
            "stock.set",
            f"product:{sku}",
            before,
            {"warehouse": warehouse.code, "quantity": data.quantity},
        )
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
        locks = {u.email: await throttle.locked_until(session, u.email) for u in users}
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
                locked_until=locks.get(u.email),
            )
            for u in users
        ],
        page=page,
        page_size=page_size,
        total=total,
    )


async def unlock_user(db: Database, user_id: int, actor: User) -> None:
    async with db.write() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        until = await throttle.locked_until(session, user.email)
        await throttle.unlock(session, user.email)
        _audit(
            session,
            actor,
            "user.unlock",
            f"user:{user_id}",
            {"locked_until": until.isoformat() if until else None},
            {"locked_until": None},
        )


async def transition_order(
    db: Database,
    services: fulfilment.Fulfilment,
    order_id: int,
    to: orders.OrderStatus,
    actor: User,
    note: str,
) -> OrderOut:
    """An admin's order transition (fulfilment decides it), then its audit entry."""
    before = await orders.get_order(db, order_id, None)
    before_state = {"status": before.status}
    order = await fulfilment.transition(
        db, services, order_id, to, actor=f"admin:{actor.id}", note=note
    )
    async with db.write() as session:
        _audit(
            session,
            actor,
            "order.transition",
            f"order:{order_id}",
            before_state,
            {"status": order.status, "note": note},
        )
    return order
