"""Migrations build the schema the models describe (the shop's and the partners' tables), on
both backends, via the deploy command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from app.db.models import SCHEMA_METADATA
from tests.conftest import REPO, PostgresServer


def _sync_url(url: str) -> str:
    return url.replace("+aiosqlite", "")  # psycopg serves both sync and async


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    return postgres.create_database()


def test_deploy_migration_command_builds_the_models_schema(empty_database: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.db", "migrate"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": empty_database},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "schema is at head" in result.stderr
    engine = create_engine(_sync_url(empty_database))
    try:
        with engine.connect() as connection:
            # The shop's tables and the partners' (outbox, quota, risk history): nothing
            # missing, nothing extra, no column or index differing.
            diff = compare_metadata(MigrationContext.configure(connection), SCHEMA_METADATA)
    finally:
        engine.dispose()
    assert diff == [], diff


def test_bad_database_url_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.db", "migrate"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": "mysql://x@y/z"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DATABASE_URL must be" in result.stderr
