"""The one declarative base: every table, the shop's and the partners', registers here.

The Alembic migrations compare against this metadata (`app.db.models.SCHEMA_METADATA`),
so a table defined anywhere in the app is one the migrations must build.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from app.db.types import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
