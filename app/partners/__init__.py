"""Integrations with payment, courier and mail providers."""
