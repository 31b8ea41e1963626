"""Accounts: registration, password and TOTP login, bearer tokens, addresses.

Passwords are argon2id hashes (argon2-cffi, RFC 9106 low-memory profile);
hashing runs in a worker thread so the event loop keeps serving. Bearer
tokens are 256-bit random strings; only their SHA-256 is stored, so a
database leak yields no usable token. A TOTP code is accepted at most once
(the last accepted time step is remembered).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import AuthToken, User, utcnow
from app.db.session import Database
from app.domain import throttle
from app.errors import (
    Conflict,
    InvalidRequest,
    StepUpFailed,
    StepUpRequired,
    StepUpUnavailable,
    Unauthorized,
)
from app.schemas import LoginOut, RegisterIn, TotpEnrolOut

TOTP_ISSUER = "Export Shop"
TOKEN_TYPE = "bearer"  # noqa: S105 - the OAuth token type, not a secret
TOTP_VALID_WINDOW = 1  # accept the previous and next 30 s step (clock drift)

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class AuthPolicy:
    session_ttl_seconds: int
    mfa_token_ttl_seconds: int
    throttle: throttle.ThrottlePolicy
    hasher: PasswordHasher = _hasher


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


async def hash_password(password: str, hasher: PasswordHasher = _hasher) -> str:
    return await asyncio.to_thread(hasher.hash, password)


async def _password_matches(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def register(
    db: Database, policy: AuthPolicy, data: RegisterIn, *, role: str = "customer"
) -> User:
    password_hash = await hash_password(data.password, policy.hasher)
    user = User(
        email=normalize_email(str(data.email)),
        password_hash=password_hash,
        full_name=data.full_name,
        role=role,
    )
    try:
        async with db.write() as session:
            session.add(user)
    except IntegrityError:
        raise Conflict("an account with this e-mail already exists") from None
    return user


async def _issue_token(session: AsyncSession, user: User, kind: str, ttl_seconds: int) -> str:
    raw = secrets.token_urlsafe(32)
    session.add(
        AuthToken(
            token_hash=_token_hash(raw),
            user_id=user.id,
            kind=kind,
            expires_at=utcnow() + timedelta(seconds=ttl_seconds),
        )
    )
    return raw


async def user_for_token(session: AsyncSession, raw: str, kind: str = "access") -> User | None:
    row = (
        await session.execute(
            select(User)
            .join(AuthToken, AuthToken.user_id == User.id)
            .where(
                AuthToken.token_hash == _token_hash(raw),
                AuthToken.kind == kind,
                AuthToken.expires_at > utcnow(),
                User.is_active.is_(True),
            )
        )
    ).scalar_one_or_none()
    return row


async def login(
    db: Database, policy: AuthPolicy, email: str, password: str, ip: str | None
) -> LoginOut:
    email = normalize_email(email)
    async with db.read() as session:
        await throttle.ensure_allowed(session, email, ip)
        user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
    ok = await _password_matches(
        policy.hasher, user.password_hash if user else _DUMMY_HASH, password
    )
    async with db.write() as session:
        if not ok or user is None or not user.is_active:
            await throttle.record_failure(session, policy.throttle, email, ip)
        elif user.totp_enabled:
            mfa_token = await _issue_token(session, user, "mfa", policy.mfa_token_ttl_seconds)
            return LoginOut(mfa_required=True, mfa_token=mfa_token)
        else:
            await throttle.record_success(session, email)
            token = await _issue_token(session, user, "access", policy.session_ttl_seconds)
            return LoginOut(
                access_token=token, token_type=TOKEN_TYPE, expires_in=policy.session_ttl_seconds
            )
    raise Unauthorized("wrong e-mail or password")


def _accepted_counter(secret: str, code: str, last_counter: int) -> int | None:
    """The time step `code` belongs to, if it is valid now and newer than the last one used."""
    totp = pyotp.TOTP(secret)
    now = utcnow()
    current = totp.timecode(now)
    for offset in range(-TOTP_VALID_WINDOW, TOTP_VALID_WINDOW + 1):
        counter = current + offset
        if counter > last_counter and secrets.compare_digest(totp.generate_otp(counter), code):
            return counter
    return None


async def login_mfa(
    db: Database, policy: AuthPolicy, mfa_token: str, code: str, ip: str | None
) -> LoginOut:
    async with db.write() as session:
        user = await user_for_token(session, mfa_token, kind="mfa")
        if user is None or user.totp_secret is None:
            raise Unauthorized("the MFA step expired or is unknown; log in again")
        await throttle.ensure_allowed(session, user.email, ip)
        counter = _accepted_counter(user.totp_secret, code, user.totp_last_counter)
        if counter is None:
            await throttle.record_failure(session, policy.throttle, user.email, ip)
            failed = True
        else:
            failed = False
            user.totp_last_counter = counter
            await session.execute(
                delete(AuthToken).where(AuthToken.token_hash == _token_hash(mfa_token))
            )
            await throttle.record_success(session, user.email)
            token = await _issue_token(session, user, "access", policy.session_ttl_seconds)
    if failed:
        raise Unauthorized("wrong or already used authentication code")
    return LoginOut(
        access_token=token, token_type=TOKEN_TYPE, expires_in=policy.session_ttl_seconds
    )


async def verify_step_up(db: Database, user: User, code: str | None) -> None:
    """Check the customer's current TOTP code (a step-up the risk check asked for).

    The accepted time step is remembered, so a code that logged in or passed an
    earlier step-up does not pass again. Raises the 403 the client acts on.
    """
    unavailable = StepUpUnavailable(
        "this payment needs an authenticator code, but the account has no TOTP enrolled; "
        "enrol at POST /api/account/mfa/totp or contact support"
    )
    if not user.totp_enabled:
        raise unavailable
    if code is None:
        raise StepUpRequired(
            "this payment needs an extra check: send your current authenticator code as "
            "totp_code with the same request"
        )
    async with db.write() as session:
        stored = await session.get(User, user.id, with_for_update=True)
        if stored is None or not stored.totp_enabled or stored.totp_secret is None:
            raise unavailable
        counter = _accepted_counter(stored.totp_secret, code, stored.totp_last_counter)
        if counter is not None:
            stored.totp_last_counter = counter
    if counter is None:
        raise StepUpFailed("wrong or already used authentication code; try the next one")


async def start_totp_enrolment(db: Database, user_id: int) -> TotpEnrolOut:
    async with db.write() as session:
        user = await session.get(User, user_id)
        assert user is not None
        if user.totp_enabled:
            raise Conflict("TOTP is already enabled on this account")
        user.totp_secret = pyotp.random_base32()
        uri = pyotp.TOTP(user.totp_secret).provisioning_uri(
            name=user.email, issuer_name=TOTP_ISSUER
        )
        return TotpEnrolOut(secret=user.totp_secret, otpauth_uri=uri)


async def confirm_totp_enrolment(db: Database, user_id: int, code: str) -> None:
    async with db.write() as session:
        user = await session.get(User, user_id)
        assert user is not None
        if user.totp_enabled:
            raise Conflict("TOTP is already enabled on this account")
        if user.totp_secret is None:
            raise Conflict("start the enrolment first: POST /api/account/mfa/totp")
        counter = _accepted_counter(user.totp_secret, code, user.totp_last_counter)
        if counter is None:
            raise InvalidRequest("the code does not match; check the device clock and try again")
        user.totp_enabled = True
        user.totp_last_counter = counter
