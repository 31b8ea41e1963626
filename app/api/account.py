"""The user centre: profile, TOTP enrolment, addresses."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from app.api.auth import user_out
from app.api.deps import CurrentUser, ServicesDep
from app.db.models import Address
from app.domain import accounts
from app.errors import Conflict
from app.schemas import AddressIn, AddressOut, TotpCodeIn, TotpEnrolOut, UserOut

router = APIRouter(prefix="/api/account", tags=["accounts"])
MAX_ADDRESSES = 20


@router.get("", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return user_out(user)


@router.post("/mfa/totp", response_model=TotpEnrolOut, summary="Start TOTP enrolment")
async def enrol_totp(user: CurrentUser, services: ServicesDep) -> TotpEnrolOut:
    return await accounts.start_totp_enrolment(services.db, user.id)


@router.post("/mfa/totp/verify", summary="Confirm TOTP enrolment with a first code")
async def verify_totp(
    body: TotpCodeIn, user: CurrentUser, services: ServicesDep
) -> dict[str, bool]:
    await accounts.confirm_totp_enrolment(services.db, user.id, body.code)
    return {"mfa_enabled": True}


def _address_out(address: Address) -> AddressOut:
    return AddressOut(
        id=address.id,
        full_name=address.full_name,
        line1=address.line1,
        line2=address.line2,
        city=address.city,
        postal_code=address.postal_code,
        country=address.country,
        phone=address.phone or None,
    )


@router.get("/addresses", response_model=list[AddressOut])
async def list_addresses(user: CurrentUser, services: ServicesDep) -> list[AddressOut]:
    async with services.db.read() as session:
        rows = (
            await session.execute(
                select(Address).where(Address.user_id == user.id).order_by(Address.id)
            )
        ).scalars()
        return [_address_out(a) for a in rows]


@router.post("/addresses", status_code=201, response_model=AddressOut)
async def add_address(body: AddressIn, user: CurrentUser, services: ServicesDep) -> AddressOut:
    async with services.db.write() as session:
        count = await session.scalar(select(func.count()).where(Address.user_id == user.id))
        if (count or 0) >= MAX_ADDRESSES:
            raise Conflict(f"at most {MAX_ADDRESSES} addresses per account")
        address = Address(
            user_id=user.id, **body.model_dump(exclude={"phone"}), phone=body.phone or ""
        )
        session.add(address)
        await session.flush()
        return _address_out(address)
