"""The user centre: profile, TOTP enrolment, addresses."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api.auth import user_out
from app.api.deps import CurrentToken, CurrentUser, ServicesDep, client_ip
from app.api.responses import SIGNED_IN, THROTTLED, error, errors
from app.domain import accounts
from app.schemas import AddressIn, AddressOut, TotpCodeIn, TotpEnrolIn, TotpEnrolOut, UserOut

router = APIRouter(prefix="/api/account", tags=["accounts"], responses=SIGNED_IN)
TOTP_ON = "TOTP is already enabled on this account (conflict)"


@router.get("", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return user_out(user)


@router.post(
    "/mfa/totp",
    response_model=TotpEnrolOut,
    responses=errors(
        error(401, "no valid access token, or the password is wrong"),
        error(409, TOTP_ON),
        THROTTLED,
    ),
    summary="Start TOTP enrolment",
)
async def enrol_totp(
    body: TotpEnrolIn, request: Request, user: CurrentUser, services: ServicesDep
) -> TotpEnrolOut:
    return await accounts.start_totp_enrolment(
        services.db, services.auth, user, body.password, client_ip(request)
    )


@router.post(
    "/mfa/totp/verify",
    responses=errors(
        error(403, "the code is not the device's current one (totp_code_rejected)"),
        error(409, f"{TOTP_ON}, or no enrolment was started (POST /api/account/mfa/totp)"),
        THROTTLED,
    ),
    summary="Confirm TOTP enrolment with a first code",
)
async def verify_totp(
    body: TotpCodeIn,
    request: Request,
    user: CurrentUser,
    token: CurrentToken,
    services: ServicesDep,
) -> dict[str, bool]:
    # every other session ends: they were opened without TOTP
    await accounts.confirm_totp_enrolment(
        services.db, services.auth, user.id, body.code, client_ip(request), keep_token=token
    )
    return {"mfa_enabled": True}


@router.get("/addresses", response_model=list[AddressOut])
async def list_addresses(user: CurrentUser, services: ServicesDep) -> list[AddressOut]:
    return await accounts.list_addresses(services.db, user.id)


@router.post(
    "/addresses",
    status_code=201,
    response_model=AddressOut,
    responses=error(409, "the account has as many addresses as it may (conflict)"),
)
async def add_address(body: AddressIn, user: CurrentUser, services: ServicesDep) -> AddressOut:
    return await accounts.add_address(services.db, user.id, body)
