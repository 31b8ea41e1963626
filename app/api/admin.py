"""The back office (role admin, TOTP enrolled): products, prices, stock, orders, users, and
the audit log of every change made here."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.api.catalog import CatalogPage, CatalogPageSize, Keywords, SkuPath
from app.api.deps import AdminUser, ServicesDep
from app.api.orders import OrderId, Page, PageSize
from app.api.responses import BACK_OFFICE, NOT_FOUND, error, errors
from app.domain import admin, orders
from app.domain.orders import OrderStatus
from app.schemas import (
    AdminUserList,
    AuditPage,
    OrderList,
    OrderOut,
    ProductCreateIn,
    ProductOut,
    ProductPage,
    ProductUpdateIn,
    StockSetIn,
    TransitionIn,
)

router = APIRouter(prefix="/api/admin", tags=["admin"], responses=BACK_OFFICE)

StatusQuery = Annotated[
    Literal[
        "pending_payment",
        "paid",
        "packed",
        "shipped",
        "delivered",
        "refund_pending",
        "cancelled",
        "refunded",
    ]
    | None,
    Query(),
]


@router.get("/products", response_model=ProductPage)
async def list_products(
    _: AdminUser,
    services: ServicesDep,
    q: Keywords = None,
    page: CatalogPage = 1,
    page_size: CatalogPageSize = 50,
) -> ProductPage:
    return await admin.search_products(services.db, q=q, page=page, page_size=page_size)


@router.post(
    "/products",
    status_code=201,
    response_model=ProductOut,
    responses=error(409, "a product with this SKU exists (conflict)"),
)
async def create_product(
    body: ProductCreateIn, admin_user: AdminUser, services: ServicesDep
) -> ProductOut:
    return await admin.create_product(
        services.db, services.cache, body, services.settings.currency, admin_user
    )


@router.get(
    "/products/{sku}",
    response_model=ProductOut,
    responses=NOT_FOUND,
    summary="One product, uncached",
)
async def get_product(sku: SkuPath, _: AdminUser, services: ServicesDep) -> ProductOut:
    return await admin.get_product(services.db, sku)


@router.patch(
    "/products/{sku}",
    response_model=ProductOut,
    responses=NOT_FOUND,
    summary="Change price or other fields",
)
async def update_product(
    sku: SkuPath, body: ProductUpdateIn, admin_user: AdminUser, services: ServicesDep
) -> ProductOut:
    return await admin.update_product(services.db, services.cache, sku, body, admin_user)


@router.put(
    "/products/{sku}/stock",
    response_model=ProductOut,
    responses=error(404, "no such product, or no such warehouse (not_found)"),
    summary="Set the stock of one warehouse",
)
async def set_stock(
    sku: SkuPath, body: StockSetIn, admin_user: AdminUser, services: ServicesDep
) -> ProductOut:
    return await admin.set_stock(services.db, services.cache, sku, body, admin_user)


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
    responses=errors(
        {202: {"description": "refund asked, not yet confirmed by the provider (refund_pending)"}},
        NOT_FOUND,
        error(409, "not a legal move from the order's status (illegal_transition)"),
        error(
            422,
            "invalid, or the courier refused the shipment when packing or shipping "
            "(shipment_rejected; `problems` says why)",
        ),
        error(503, "the courier or the payment provider did not answer, or the database"),
    ),
)
async def transition(
    order_id: OrderId,
    body: TransitionIn,
    admin_user: AdminUser,
    services: ServicesDep,
    response: Response,
) -> OrderOut:
    order = await admin.transition_order(
        services.db, services.fulfilment, order_id, OrderStatus(body.to), admin_user, body.note
    )
    if order.status == "refund_pending":
        response.status_code = 202  # accepted: the provider has not confirmed the refund yet
    return order


@router.get("/users", response_model=AdminUserList)
async def list_users(
    _: AdminUser,
    services: ServicesDep,
    email: Annotated[str | None, Query(max_length=254)] = None,
    page: Page = 1,
    page_size: PageSize = 50,
) -> AdminUserList:
    return await admin.list_users(services.db, page=page, page_size=page_size, email=email)


@router.post(
    "/users/{user_id}/unlock",
    status_code=204,
    responses=error(404, "no such user (not_found)"),
    summary="Lift a login lockout",
)
async def unlock_user(user_id: OrderId, admin_user: AdminUser, services: ServicesDep) -> Response:
    await admin.unlock_user(services.db, user_id, admin_user)
    return Response(status_code=204)


@router.get("/audit", response_model=AuditPage, summary="The audit log, newest first")
async def audit_log(
    _: AdminUser, services: ServicesDep, page: Page = 1, page_size: PageSize = 50
) -> AuditPage:
    return await admin.list_audit(services.db, page=page, page_size=page_size)
