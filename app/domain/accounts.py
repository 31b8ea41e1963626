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
from dataclasses import dataclass, field
from datetime import timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet
from prometheus_client import Counter
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Address, AuthToken, User
from app.db.session import Database
from app.db.types import utcnow
from app.domain import throttle
from app.domain.errors import (
    Conflict,
    Forbidden,
    StepUpFailed,
    StepUpRequired,
    StepUpUnavailable,
    TotpCodeRejected,
    Unauthorized,
)
from app.schemas import AddressIn, AddressOut, LoginOut, RegisterIn, TotpEnrolOut
from app.settings import get_settings

TOTP_ISSUER = "Export Shop"
TOKEN_TYPE = "bearer"  # noqa: S105 - the OAuth token type, not a secret
TOTP_VALID_WINDOW = 1  # accept the previous and next 30 s step (clock drift)
MAX_ADDRESSES = 20

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

# Every password the shop evaluates (login, re-authentication): what the throttle bounds.
password_checks_total = Counter(
    "shop_login_password_checks_total", "Passwords evaluated against a stored hash."
)


class AdminMfaRequired(Forbidden):
    """An admin without TOTP: the back office stays closed until TOTP is enrolled."""

    code = "admin_mfa_required"


def _hash_slots() -> asyncio.Semaphore:
    return asyncio.Semaphore(get_settings().password_hash_concurrency)


@dataclass(frozen=True)
class AuthPolicy:
    session_ttl_seconds: int
    mfa_token_ttl_seconds: int
    throttle: throttle.ThrottlePolicy
    hasher: PasswordHasher = _hasher
    # argon2 computations at once in this process; more wait (a flood cannot starve the host)
    hash_slots: asyncio.Semaphore = field(default_factory=_hash_slots)
    # encrypts TOTP secrets at rest (TOTP_ENCRYPTION_KEY); None: stored as before, in clear
    totp_cipher: Fernet | None = field(default_factory=lambda: _cipher())


def _cipher() -> Fernet | None:
    key = get_settings().totp_encryption_key
    return Fernet(key.get_secret_value().encode()) if key is not None else None


_default_policy: AuthPolicy | None = None


def default_policy() -> AuthPolicy:
    """The policy from settings, for callers that do not pass one (the checkout step-up)."""
    global _default_policy
    if _default_policy is None:
        settings = get_settings()
        _default_policy = AuthPolicy(
            session_ttl_seconds=settings.session_ttl_seconds,
            mfa_token_ttl_seconds=settings.mfa_token_ttl_seconds,
            throttle=throttle.ThrottlePolicy(
                account_max_failures=settings.login_max_failures,
                account_lockout_seconds=settings.login_lockout_seconds,
                account_backoff_initial_seconds=settings.login_backoff_initial_seconds,
                ip_max_failures=settings.ip_max_failures,
                ip_window_seconds=settings.ip_failure_window_seconds,
            ),
        )
    return _default_policy


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


async def hash_password(
    password: str, hasher: PasswordHasher = _hasher, slots: asyncio.Semaphore | None = None
) -> str:
    if slots is None:
        return await asyncio.to_thread(hasher.hash, password)
    async with slots:
        return await asyncio.to_thread(hasher.hash, password)


async def _password_matches(policy: AuthPolicy, password_hash: str, password: str) -> bool:
    password_checks_total.inc()
    try:
        async with policy.hash_slots:
            return await asyncio.to_thread(policy.hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def register(
    db: Database,
    policy: AuthPolicy,
    data: RegisterIn,
    *,
    role: str = "customer",
    ip: str | None = None,
    throttled: bool = False,
) -> User | None:
    """Create the account. Returns None (and changes nothing) when the e-mail is taken: the
    caller answers the same either way, so registration reveals no account. With
    `throttled`, counts the registration per client IP first."""
    if throttled:
        await throttle.take_registration(db, policy.throttle, ip)
    password_hash = await hash_password(data.password, policy.hasher, policy.hash_slots)
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
        if throttled:
            return None
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


async def authenticated_user(db: Database, raw_token: str) -> User | None:
    """The active user an access token belongs to, or None (unknown, expired, deactivated)."""
    async with db.read() as session:
        return await user_for_token(session, raw_token)


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
    # counted before the password is evaluated (committed): concurrent guesses cannot all pass
    await throttle.take_attempt(db, policy.throttle, "login", email, ip)
    async with db.read() as session:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
    ok = await _password_matches(policy, user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or not user.is_active:
        raise Unauthorized("wrong e-mail or password")
    async with db.write() as session:
        await throttle.record_success(session, "login", email, ip)
        if user.totp_enabled:
            mfa_token = await _issue_token(session, user, "mfa", policy.mfa_token_ttl_seconds)
            return LoginOut(mfa_required=True, mfa_token=mfa_token)
        token = await _issue_token(session, user, "access", policy.session_ttl_seconds)
        return LoginOut(
            access_token=token, token_type=TOKEN_TYPE, expires_in=policy.session_ttl_seconds
        )


async def reauthenticate(
    db: Database, policy: AuthPolicy, user: User, password: str, ip: str | None
) -> None:
    """The signed-in user's password again (before a security change), throttled like a
    login."""
    await throttle.take_attempt(db, policy.throttle, "reauth", str(user.id), ip)
    if not await _password_matches(policy, user.password_hash, password):
        raise Unauthorized("wrong password")
    async with db.write() as session:
        await throttle.record_success(session, "reauth", str(user.id), ip)


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
    async with db.read() as session:
        pending = await user_for_token(session, mfa_token, kind="mfa")
        if pending is None:
            raise Unauthorized("the MFA step expired or is unknown; log in again")
        user_id = pending.id
    await throttle.take_attempt(db, policy.throttle, "mfa", str(user_id), ip)
    async with db.write() as session:
        # the row lock serializes concurrent steps of one user (PostgreSQL; SQLite writes are
        # serialized anyway), so a code is accepted once however many requests carry it
        user = (
            await session.execute(
                select(User)
                .where(User.id == user_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        spent = await session.execute(
            delete(AuthToken).where(
                AuthToken.token_hash == _token_hash(mfa_token),
                AuthToken.kind == "mfa",
                AuthToken.expires_at > utcnow(),
            )
        )
        secret = totp_secret(policy, user) if user is not None else None
        if user is None or not user.is_active or secret is None or spent.rowcount != 1:
            raise Unauthorized("the MFA step expired or is unknown; log in again")
        counter = _accepted_counter(secret, code, user.totp_last_counter)
        if counter is None:
            # raised inside the transaction: it rolls back, the step token stays usable
            raise Unauthorized("wrong or already used authentication code")
        user.totp_last_counter = counter
        await throttle.record_success(session, "mfa", str(user.id), ip)
        token = await _issue_token(session, user, "access", policy.session_ttl_seconds)
    return LoginOut(
        access_token=token, token_type=TOKEN_TYPE, expires_in=policy.session_ttl_seconds
    )


async def verify_step_up(
    db: Database, user: User, code: str | None, policy: AuthPolicy | None = None
) -> None:
    """Check the customer's current TOTP code (a step-up the risk check asked for).

    The accepted time step is remembered, so a code that logged in or passed an
    earlier step-up does not pass again. Throttled per account like a login (the
    attempt is counted first). Raises the 403 the client acts on.
    """
    policy = policy or default_policy()
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
    await throttle.take_attempt(db, policy.throttle, "stepup", str(user.id), None)
    async with db.write() as session:
        stored = (
            await session.execute(
                select(User)
                .where(User.id == user.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        secret = totp_secret(policy, stored) if stored is not None else None
        if stored is None or not stored.totp_enabled or secret is None:
            raise unavailable
        counter = _accepted_counter(secret, code, stored.totp_last_counter)
        if counter is not None:
            stored.totp_last_counter = counter
            await throttle.record_success(session, "stepup", str(user.id), None)
    if counter is None:
        raise StepUpFailed("wrong or already used authentication code; try the next one")


# --- TOTP secrets at rest -----------------------------------------------------


def totp_secret(policy: AuthPolicy, user: User) -> str | None:
    """The user's TOTP secret in clear. A plaintext secret of an earlier release is
    encrypted in place when a key is configured (the caller's transaction saves it)."""
    if user.totp_secret_enc:
        if policy.totp_cipher is None:
            raise RuntimeError("TOTP secrets are encrypted but TOTP_ENCRYPTION_KEY is not set")
        return policy.totp_cipher.decrypt(user.totp_secret_enc.encode()).decode()
    plain = user.totp_secret
    if plain is not None and policy.totp_cipher is not None:
        _store_totp_secret(policy, user, plain)
    return plain


def _store_totp_secret(policy: AuthPolicy, user: User, secret: str | None) -> None:
    if secret is None or policy.totp_cipher is None:
        user.totp_secret, user.totp_secret_enc = secret, None
    else:
        user.totp_secret = None
        user.totp_secret_enc = policy.totp_cipher.encrypt(secret.encode()).decode()


async def start_totp_enrolment(
    db: Database, policy: AuthPolicy, user: User, password: str, ip: str | None
) -> TotpEnrolOut:
    """A new TOTP secret for the signed-in user, after their password again (throttled
    like a login), so that a stolen session alone cannot enrol the thief's device."""
    if user.totp_enabled:
        raise Conflict("TOTP is already enabled on this account")
    await reauthenticate(db, policy, user, password, ip)
    async with db.write() as session:
        user = await session.get(User, user.id, with_for_update=True)
        assert user is not None
        if user.totp_enabled:
            raise Conflict("TOTP is already enabled on this account")
        secret = pyotp.random_base32()
        _store_totp_secret(policy, user, secret)
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
        return TotpEnrolOut(secret=secret, otpauth_uri=uri)


async def confirm_totp_enrolment(
    db: Database,
    policy: AuthPolicy,
    user_id: int,
    code: str,
    ip: str | None,
    keep_token: str | None = None,
) -> None:
    """Turn TOTP on. Every other session of the user ends (they were opened without it).
    Throttled like a login: the attempt is counted before the code is looked at."""
    await throttle.take_attempt(db, policy.throttle, "totp-enrol", str(user_id), ip)
    async with db.write() as session:
        user = await session.get(User, user_id, with_for_update=True)
        assert user is not None
        if user.totp_enabled:
            raise Conflict("TOTP is already enabled on this account")
        secret = totp_secret(policy, user)
        if secret is None:
            raise Conflict("start the enrolment first: POST /api/account/mfa/totp")
        counter = _accepted_counter(secret, code, user.totp_last_counter)
        if counter is None:
            raise TotpCodeRejected("the code does not match; check the device clock and try again")
        user.totp_enabled = True
        user.totp_last_counter = counter
        await throttle.record_success(session, "totp-enrol", str(user_id), ip)
        revoke = delete(AuthToken).where(AuthToken.user_id == user_id)
        if keep_token is not None:
            revoke = revoke.where(AuthToken.token_hash != _token_hash(keep_token))
        await session.execute(revoke)


# --- sessions -----------------------------------------------------------------


async def logout(db: Database, raw_token: str) -> None:
    async with db.write() as session:
        await session.execute(
            delete(AuthToken).where(AuthToken.token_hash == _token_hash(raw_token))
        )


async def logout_all(db: Database, user_id: int) -> int:
    async with db.write() as session:
        result = await session.execute(delete(AuthToken).where(AuthToken.user_id == user_id))
        return result.rowcount or 0


def ensure_admin_mfa(user: User) -> None:
    if not user.totp_enabled:
        raise AdminMfaRequired(
            "the back office needs TOTP: enrol at POST /api/account/mfa/totp, then log in again"
        )


# --- addresses --------------------------------------------------------------


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


async def list_addresses(db: Database, user_id: int) -> list[AddressOut]:
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Address).where(Address.user_id == user_id).order_by(Address.id)
            )
        ).scalars()
        return [_address_out(a) for a in rows]


async def add_address(db: Database, user_id: int, data: AddressIn) -> AddressOut:
    async with db.write() as session:
        count = await session.scalar(select(func.count()).where(Address.user_id == user_id))
        if (count or 0) >= MAX_ADDRESSES:
            raise Conflict(f"at most {MAX_ADDRESSES} addresses per account")
        address = Address(
            user_id=user_id, **data.model_dump(exclude={"phone"}), phone=data.phone or ""
        )
        session.add(address)
        await session.flush()
        return _address_out(address)
