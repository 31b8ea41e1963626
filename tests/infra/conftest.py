"""Fixtures: every stack's program, run once per session under Pulumi's mocks."""

from __future__ import annotations

import pytest

from tests.infra.model import STACKS, StackModel, load_all


@pytest.fixture(scope="session")
def models() -> dict[str, StackModel]:
    return load_all()


@pytest.fixture(params=STACKS)
def model(request: pytest.FixtureRequest, models: dict[str, StackModel]) -> StackModel:
    return models[request.param]
