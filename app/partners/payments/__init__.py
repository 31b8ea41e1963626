"""Payments: the HTTP gateway to the payment providers (card, wallet, crypto)."""

from app.partners.payments.gateway import HttpPaymentGateway, build_payment_gateway

__all__ = ["HttpPaymentGateway", "build_payment_gateway"]
