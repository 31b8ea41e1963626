"""Persistence: models, engine and sessions, migrations (`python -m app.db migrate`)."""
