"""The layers keep to their side: the domain knows no HTTP, routes open no transactions,
every domain refusal has one HTTP status, and the sandboxes share no code with the shop
side they stand in for."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import app.domain.errors as domain_errors
from app.domain.errors import DomainError
from app.errors import http_status

APP = Path(__file__).resolve().parents[2] / "app"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((APP / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("domain"), ids=lambda p: p.name)
def test_the_domain_imports_no_web_framework(path: Path) -> None:
    web = {
        name
        for name in _imports(path)
        if name.split(".")[0] in {"fastapi", "starlette"}
        or name.startswith(("app.api", "app.errors", "app.main"))
    }
    assert not web, f"{path.relative_to(APP)} imports {sorted(web)}"


@pytest.mark.parametrize("path", _modules("partners"), ids=lambda p: p.name)
def test_partner_clients_import_no_web_framework(path: Path) -> None:
    web = {n for n in _imports(path) if n.split(".")[0] in {"fastapi", "starlette"}}
    assert not web, f"{path.relative_to(APP)} imports {sorted(web)}"


@pytest.mark.parametrize("path", _modules("api"), ids=lambda p: p.name)
def test_route_handlers_open_no_database_session(path: Path) -> None:
    """Transactions belong to the domain services; a route only calls them."""
    tree = ast.parse(path.read_text())
    opened = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in {"read", "write"}
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "db"
    ]
    assert not opened, f"{path.relative_to(APP)} opens a session at lines {opened}"


@pytest.mark.parametrize("path", _modules("sandbox"), ids=lambda p: p.name)
def test_sandboxes_share_no_code_with_the_shop(path: Path) -> None:
    shared = {n for n in _imports(path) if n.startswith("app.") and not n.startswith("app.sandbox")}
    assert not shared, f"{path.relative_to(APP)} imports {sorted(shared)}"


def _domain_errors() -> list[type[DomainError]]:
    return [
        cls
        for _, cls in inspect.getmembers(domain_errors, inspect.isclass)
        if issubclass(cls, DomainError)
    ]


@pytest.mark.parametrize("error", _domain_errors(), ids=lambda cls: cls.__name__)
def test_every_domain_error_becomes_a_client_or_upstream_status(error: type[DomainError]) -> None:
    status = http_status(error("refused"))
    assert 400 <= status < 600 and status != 500
    assert error.code and error.code == error.code.lower()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("NotFound", 404),
        ("Unauthorized", 401),
        ("StepUpRequired", 403),
        ("OutOfStock", 409),
        ("IllegalTransition", 409),
        ("InvalidRequest", 422),
        ("ShipmentRefused", 422),
        ("PaymentFailed", 402),
        ("TooManyAttempts", 429),
        ("UpstreamUnavailable", 503),
    ],
)
def test_the_edge_maps_each_refusal_to_its_status(error: str, status: int) -> None:
    assert http_status(getattr(domain_errors, error)("refused")) == status
