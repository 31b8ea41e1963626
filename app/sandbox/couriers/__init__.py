"""Couriers sandbox: swiftpost (economy) and globex (standard, express)."""

from app.sandbox.couriers.app import create_app
from app.sandbox.couriers.rates import COURIERS

__all__ = ["COURIERS", "create_app"]
