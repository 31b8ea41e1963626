"""Couriers: the HTTP gateway to the courier APIs (quotes, labels, customs, tracking)."""

from app.partners.couriers.gateway import (
    CourierUnavailable,
    HttpCourierGateway,
    ShipmentRejected,
    build_courier_gateway,
    tracking_update_from_webhook,
)

__all__ = [
    "CourierUnavailable",
    "HttpCourierGateway",
    "ShipmentRejected",
    "build_courier_gateway",
    "tracking_update_from_webhook",
]
