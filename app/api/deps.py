"""Request dependencies: the services, the caller's identity and role, cart id, client IP."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.db.models import User
from app.domain import accounts
from app.domain.errors import Forbidden, Unauthorized
from app.wiring import Services


async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 200:
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


# Declares the scheme in /openapi.json (`bearer`; operations that need or take a token
# list it). The header itself is read below: a malformed one is a 401, not ignored.
BEARER = HTTPBearer(
    scheme_name="bearer",
    description="the access_token of POST /api/auth/login (or /api/auth/login/mfa)",
    auto_error=False,
)


async def optional_user(
    services: ServicesDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> User | None:
    token = _bearer(authorization)
    if token is None:
        return None
    user = await accounts.authenticated_user(services.db, token)
    if user is None:
        raise Unauthorized("the access token is invalid or expired; log in again")
    return user


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise Unauthorized("log in first: send Authorization: Bearer <access_token>")
    return user


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role != "admin":
        raise Forbidden("this needs the admin role")
    accounts.ensure_admin_mfa(user)  # 403 admin_mfa_required until TOTP is enrolled
    return user


async def current_token(
    _: Annotated[User, Depends(current_user)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    """The caller's (valid) bearer token itself."""
    token = _bearer(authorization)
    assert token is not None
    return token


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
CurrentToken = Annotated[str, Depends(current_token)]
CartIdHeader = Annotated[str | None, Header(alias="X-Cart-Id", max_length=64)]


def client_ip(request: Request) -> str | None:
    # Behind the load balancer, uvicorn rewrites the client from X-Forwarded-For
    # when FORWARDED_ALLOW_IPS names the balancer.
    return request.client.host if request.client else None
