"""Payment providers sandbox: card-primary, card-secondary, wallet and crypto."""

from app.sandbox.payments.app import PROVIDERS, create_app

__all__ = ["PROVIDERS", "create_app"]
