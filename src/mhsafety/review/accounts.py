"""Review app accounts: argon2id password hashes, roles, disabling.

A failed sign-in takes the same work whether the user is unknown, disabled or gave a wrong
password (a dummy hash is verified), so timing does not tell which.
"""

from __future__ import annotations

import re
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mhsafety.review import audit_trail
from mhsafety.review.models import User, WebSession

MIN_PASSWORD_LENGTH = 12
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("mhsafety-dummy-password-for-constant-time")


class Role(StrEnum):
    """What a user may do: review; also adjudicate conflicts; also administer."""

    REVIEWER = "reviewer"
    ADJUDICATOR = "adjudicator"
    ADMIN = "admin"


class AccountError(ValueError):
    """An account operation was refused."""


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (refuses passwords shorter than the minimum)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def canonical(username: str) -> str:
    """A username as stored and compared: trimmed and lower-case (``Ana`` is ``ana``)."""
    return username.strip().lower()


def get_user(session: Session, username: str) -> User | None:
    """The user called ``username`` (case-insensitive), or None."""
    return session.scalar(select(User).where(User.username == canonical(username)))


def require_user(session: Session, username: str, *roles: Role) -> User:
    """The active user ``username``, who must hold one of ``roles`` (any role when none given).

    Raises:
        AccountError: unknown, disabled, or without the role.
    """
    user = get_user(session, username)
    if user is None or not user.active:
        raise AccountError(f"no active user {username!r}")
    if roles and Role(user.role) not in roles:
        raise AccountError(f"{username!r} is a {user.role}, not {'/'.join(roles)}")
    return user


def add_user(session: Session, username: str, password: str, role: Role, *, actor: str) -> User:
    """Create an active user.

    Raises:
        AccountError: bad username, short password, or the name is taken.
    """
    if not USERNAME.match(username):
        raise AccountError(f"username {username!r}: 2-64 letters, digits or . _ @ -")
    username = canonical(username)
    if get_user(session, username) is not None:
        raise AccountError(f"user {username!r} exists")
    user = User(username=username, password_hash=hash_password(password), role=Role(role).value)
    session.add(user)
    session.flush()
    audit_trail.record(session, actor, "user.added", "user", username, {"role": user.role})
    return user


def set_active(session: Session, username: str, active: bool, *, actor: str) -> User:
    """Disable (or re-enable) a user; a disabled user cannot sign in. Labels are kept.

    Disabling also ends the user's open web sessions at once.
    """
    user = get_user(session, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    user.active = active
    if not active:
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    audit_trail.record(
        session, actor, "user.enabled" if active else "user.disabled", "user", username
    )
    return user


def disable_user(session: Session, username: str, *, actor: str) -> User:
    """Disable a user (see :func:`set_active`)."""
    return set_active(session, username, False, actor=actor)


def set_password(session: Session, username: str, password: str, *, actor: str) -> None:
    """Replace a user's password."""
    user = get_user(session, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    user.password_hash = hash_password(password)
    audit_trail.record(session, actor, "user.password_set", "user", username)


def verify_password(session: Session, username: str, password: str) -> User | None:
    """The active user if ``password`` is theirs, else None (same work either way).

    A successful check rehashes a hash made with older parameters; every failure is recorded
    in the audit trail (without the password).
    """
    user = get_user(session, username)
    stored = user.password_hash if user is not None and user.active else _DUMMY_HASH
    try:
        ok: bool = _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or not user.active:
        name = canonical(username)[:64]
        audit_trail.record(session, name, "login.failed", "user", name)
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    audit_trail.record(session, user.username, "login.succeeded", "user", user.username)
    return user
