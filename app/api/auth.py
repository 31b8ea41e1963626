"""Registration and login (password, then TOTP when enrolled)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api.deps import ServicesDep, client_ip
from app.db.models import User
from app.domain import accounts
from app.schemas import LoginIn, LoginOut, MfaLoginIn, RegisterIn, UserOut

router = APIRouter(prefix="/api/auth", tags=["accounts"])


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        mfa_enabled=user.totp_enabled,
        created_at=user.created_at,
    )


@router.post("/register", status_code=201, response_model=UserOut)
async def register(body: RegisterIn, services: ServicesDep) -> UserOut:
    return user_out(await accounts.register(services.db, services.auth, body))


@router.post(
    "/login",
    response_model=LoginOut,
    response_model_exclude_none=True,
    responses={
        401: {"description": "wrong credentials"},
        429: {"description": "locked or throttled"},
    },
)
async def login(body: LoginIn, request: Request, services: ServicesDep) -> LoginOut:
    return await accounts.login(
        services.db, services.auth, str(body.email), body.password, client_ip(request)
    )


@router.post("/login/mfa", response_model=LoginOut, response_model_exclude_none=True)
async def login_mfa(body: MfaLoginIn, request: Request, services: ServicesDep) -> LoginOut:
    return await accounts.login_mfa(
        services.db, services.auth, body.mfa_token, body.code, client_ip(request)
    )
