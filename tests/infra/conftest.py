"""Fixtures: every stack's program, run once per session under Pulumi's mocks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the `infra` package lives at the repo root

from tests.infra.model import STACKS, StackModel, load_all  # noqa: E402


@pytest.fixture(scope="session")
def models() -> dict[str, StackModel]:
    return load_all()


@pytest.fixture(params=STACKS)
def model(request: pytest.FixtureRequest, models: dict[str, StackModel]) -> StackModel:
    return models[request.param]
