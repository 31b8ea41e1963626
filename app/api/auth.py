"""Registration and login (password, then TOTP when enrolled)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import CurrentToken, CurrentUser, ServicesDep, client_ip
from app.api.responses import STANDARD, THROTTLED, UNAUTHORIZED, error, errors
from app.db.models import User
from app.domain import accounts
from app.schemas import LoginIn, LoginOut, MfaLoginIn, RegisterIn, RegisterOut, UserOut

router = APIRouter(prefix="/api/auth", tags=["accounts"], responses=STANDARD)


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        mfa_enabled=user.totp_enabled,
        created_at=user.created_at,
    )


@router.post(
    "/register",
    status_code=201,
    response_model=RegisterOut,
    responses=error(429, "too many registrations from this client (too_many_attempts)"),
    summary="Register (the answer is the same whether or not the e-mail is taken)",
)
async def register(body: RegisterIn, request: Request, services: ServicesDep) -> RegisterOut:
    await accounts.register(services.db, services.auth, body, ip=client_ip(request), throttled=True)
    return RegisterOut()


@router.post(
    "/login",
    response_model=LoginOut,
    response_model_exclude_none=True,
    responses=errors(
        error(401, "wrong e-mail or password (unauthorized)"),
        error(429, "locked or throttled (too_many_attempts); Retry-After says when to retry"),
    ),
)
async def login(body: LoginIn, request: Request, services: ServicesDep) -> LoginOut:
    return await accounts.login(
        services.db, services.auth, str(body.email), body.password, client_ip(request)
    )


@router.post(
    "/login/mfa",
    response_model=LoginOut,
    response_model_exclude_none=True,
    responses=errors(
        error(401, "the MFA step is unknown or expired, or the code is wrong or used"),
        THROTTLED,
    ),
)
async def login_mfa(body: MfaLoginIn, request: Request, services: ServicesDep) -> LoginOut:
    return await accounts.login_mfa(
        services.db, services.auth, body.mfa_token, body.code, client_ip(request)
    )


@router.post(
    "/logout",
    status_code=204,
    responses=UNAUTHORIZED,
    summary="End this session (its token is revoked)",
)
async def logout(_: CurrentUser, token: CurrentToken, services: ServicesDep) -> Response:
    await accounts.logout(services.db, token)
    return Response(status_code=204)


@router.post(
    "/logout-all",
    status_code=204,
    responses=UNAUTHORIZED,
    summary="End every session of the user",
)
async def logout_all(user: CurrentUser, services: ServicesDep) -> Response:
    await accounts.logout_all(services.db, user.id)
    return Response(status_code=204)
