"""Business rules of the shop, independent of HTTP: catalog, cart, checkout, orders, accounts."""
