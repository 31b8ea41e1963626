"""The back office (role admin): products, prices, stock, orders, users."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.api.catalog import SkuPath
from app.api.deps import AdminUser, ServicesDep
from app.api.orders import OrderId, Page, PageSize
from app.domain import admin, catalog, orders
from app.domain.orders import OrderStatus
from app.errors import NotFound
from app.schemas import (
    AdminUserList,
    OrderList,
    OrderOut,
    ProductCreateIn,
    ProductOut,
    ProductPage,
    ProductUpdateIn,
    StockSetIn,
    TransitionIn,
)

router = APIRouter(prefix="/api/admin", tags=["admin"])

StatusQuery = Annotated[
    Literal["pending_payment", "paid", "packed", "shipped", "delivered", "cancelled", "refunded"]
    | None,
    Query(),
]


@router.get("/products", response_model=ProductPage)
async def list_products(
    _: AdminUser,
    services: ServicesDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    page: Page = 1,
    page_size: PageSize = 50,
) -> ProductPage:
    async with services.db.read() as session:
        return await catalog.run_search(
            session, catalog.SearchParams(q=q, sort="newest", page=page, page_size=page_size)
        )


@router.post("/products", status_code=201, response_model=ProductOut)
async def create_product(body: ProductCreateIn, _: AdminUser, services: ServicesDep) -> ProductOut:
    return await admin.create_product(services.db, services.cache, body, services.settings.currency)


@router.get("/products/{sku}", response_model=ProductOut, summary="One product, uncached")
async def get_product(sku: SkuPath, _: AdminUser, services: ServicesDep) -> ProductOut:
    async with services.db.read() as session:
        product = await catalog.load_product(session, sku)
    if product is None:
        raise NotFound(f"no product with SKU {sku!r}", sku=sku)
    return product


@router.patch("/products/{sku}", response_model=ProductOut, summary="Change price or other fields")
async def update_product(
    sku: SkuPath, body: ProductUpdateIn, _: AdminUser, services: ServicesDep
) -> ProductOut:
    return await admin.update_product(services.db, services.cache, sku, body)


@router.put(
    "/products/{sku}/stock", response_model=ProductOut, summary="Set the stock of one warehouse"
)
async def set_stock(
    sku: SkuPath, body: StockSetIn, _: AdminUser, services: ServicesDep
) -> ProductOut:
    return await admin.set_stock(services.db, services.cache, sku, body)


@router.get("/orders", response_model=OrderList)
async def list_orders(
    _: AdminUser,
    services: ServicesDep,
    status: StatusQuery = None,
    page: Page = 1,
    page_size: PageSize = 50,
) -> OrderList:
    return await orders.list_orders(
        services.db, user_id=None, status=status, page=page, page_size=page_size
    )


@router.post(
    "/orders/{order_id}/transition",
    response_model=OrderOut,
    responses={409: {"description": "illegal transition"}},
)
async def transition(
    order_id: OrderId, body: TransitionIn, admin_user: AdminUser, services: ServicesDep
) -> OrderOut:
    return await orders.transition(
        services.db,
        services.fulfilment,
        order_id,
        OrderStatus(body.to),
        actor=f"admin:{admin_user.id}",
        note=body.note,
    )


@router.get("/users", response_model=AdminUserList)
async def list_users(
    _: AdminUser,
    services: ServicesDep,
    email: Annotated[str | None, Query(max_length=254)] = None,
    page: Page = 1,
    page_size: PageSize = 50,
) -> AdminUserList:
    return await admin.list_users(services.db, page=page, page_size=page_size, email=email)


@router.post("/users/{user_id}/unlock", status_code=204, summary="Lift a login lockout")
async def unlock_user(user_id: OrderId, _: AdminUser, services: ServicesDep) -> Response:
    await admin.unlock_user(services.db, user_id)
    return Response(status_code=204)
