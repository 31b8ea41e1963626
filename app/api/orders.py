"""The customer's orders: history, detail, tracking, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api.deps import CurrentUser, ServicesDep
from app.api.responses import NOT_FOUND, SIGNED_IN, error, errors
from app.domain import fulfilment, orders
from app.domain.orders import OrderStatus
from app.schemas import OrderList, OrderOut, TrackingOut

router = APIRouter(prefix="/api/orders", tags=["orders"], responses=SIGNED_IN)
OrderId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Page = Annotated[int, Query(ge=1, le=10_000)]
PageSize = Annotated[int, Query(ge=1, le=100)]


@router.get("", response_model=OrderList)
async def my_orders(
    user: CurrentUser, services: ServicesDep, page: Page = 1, page_size: PageSize = 20
) -> OrderList:
    return await orders.list_orders(
        services.db, user_id=user.id, status=None, page=page, page_size=page_size
    )


@router.get("/{order_id}", response_model=OrderOut, responses=NOT_FOUND)
async def my_order(order_id: OrderId, user: CurrentUser, services: ServicesDep) -> OrderOut:
    return orders.order_view(await orders.get_order(services.db, order_id, user.id))


@router.get(
    "/{order_id}/tracking",
    response_model=TrackingOut,
    responses=NOT_FOUND,
    summary="The order's history and the courier's events (which also move the order on)",
)
async def tracking(order_id: OrderId, user: CurrentUser, services: ServicesDep) -> TrackingOut:
    return await fulfilment.tracking(services.db, services.fulfilment, order_id, user.id)


@router.post(
    "/{order_id}/cancel",
    response_model=OrderOut,
    responses=errors(
        {202: {"description": "cancelled; the refund is not yet confirmed (refund_pending)"}},
        NOT_FOUND,
        error(409, "too late to cancel (illegal_transition)"),
        error(503, "the payment provider did not answer the refund, or the database"),
    ),
)
async def cancel(
    order_id: OrderId, user: CurrentUser, services: ServicesDep, response: Response
) -> OrderOut:
    order = await fulfilment.transition(
        services.db,
        services.fulfilment,
        order_id,
        OrderStatus.CANCELLED,
        actor="customer",
        user_id=user.id,
    )
    if order.status == "refund_pending":
        response.status_code = 202
    return order
