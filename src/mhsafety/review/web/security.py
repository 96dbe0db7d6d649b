"""Sessions, CSRF tokens and sign-in throttling of the review app (pure logic over the database).

* A session token is 256 random bits in an HttpOnly, SameSite=Strict cookie; the database keeps
  only its sha256, so a copy of the database cannot be used to sign in. Sessions end after an
  idle time and an absolute lifetime, at sign-out, and when the user is disabled.
* Every form carries the session's CSRF token (synchronizer token); the sign-in form, which has
  no session yet, uses a double-submit cookie. Tokens are compared in constant time.
* Failed sign-ins are throttled per username (counted from the audit trail, so the limit holds
  across restarts and processes) and per client address (in memory).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
from collections import deque
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mhsafety.review.models import AuditEvent, User, WebSession, utcnow

SESSION_COOKIE = "mhs_session"
LOGIN_CSRF_COOKIE = "mhs_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class SecuritySettings:
    """Limits of sessions and sign-in attempts."""

    secure_cookies: bool = False
    """Mark cookies Secure (set when the app is served over HTTPS, e.g. behind a proxy)."""
    idle_timeout: dt.timedelta = dt.timedelta(minutes=60)
    absolute_timeout: dt.timedelta = dt.timedelta(hours=12)
    failures_per_user: int = 5
    """Failed sign-ins for one username within ``failure_window`` before it is throttled."""
    failures_per_client: int = 20
    """Failed sign-ins from one client address within ``failure_window`` before throttling."""
    failure_window: dt.timedelta = dt.timedelta(minutes=15)


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The sha256 hex digest under which a session token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_match(expected: str | None, given: str | None) -> bool:
    """True when both tokens are present and equal (constant-time comparison)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def start_session(session: Session, user: User, client: str) -> tuple[str, WebSession]:
    """Open a session for ``user``; returns the cookie token and the stored row."""
    token = new_token()
    row = WebSession(
        token_sha256=token_digest(token),
        user_id=user.id,
        csrf_token=new_token(),
        created_at=utcnow(),
        last_seen_at=utcnow(),
        client=client[:64],
    )
    session.add(row)
    session.flush()
    return token, row


def find_session(
    session: Session, token: str | None, settings: SecuritySettings, *, now: dt.datetime
) -> tuple[WebSession, User] | None:
    """The live session for a cookie token and its active user, else None.

    An expired session, or one whose user was disabled, is deleted. The idle clock is
    refreshed at most once a minute to spare the database a write per request.
    """
    if not token:
        return None
    row = session.get(WebSession, token_digest(token))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    expired = (
        now - row.last_seen_at > settings.idle_timeout
        or now - row.created_at > settings.absolute_timeout
    )
    if expired or user is None or not user.active:
        session.delete(row)
        session.flush()
        return None
    if now - row.last_seen_at > dt.timedelta(minutes=1):
        row.last_seen_at = now
    return row, user


def end_session(session: Session, token: str | None) -> None:
    """Delete the session of a cookie token (nothing when there is none)."""
    if token:
        session.execute(delete(WebSession).where(WebSession.token_sha256 == token_digest(token)))


def recent_user_failures(
    session: Session, username: str, window: dt.timedelta, *, now: dt.datetime
) -> int:
    """Failed sign-ins for ``username`` in ``window``, since its last successful one."""
    since = now - window
    last_ok = session.scalar(
        select(func.max(AuditEvent.at)).where(
            AuditEvent.actor == username, AuditEvent.action == "login.succeeded"
        )
    )
    if last_ok is not None:
        last_ok = last_ok if last_ok.tzinfo else last_ok.replace(tzinfo=dt.UTC)
        since = max(since, last_ok)
    return int(
        session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.actor == username,
                AuditEvent.action == "login.failed",
                AuditEvent.at > since,
            )
        )
        or 0
    )


class ClientThrottle:
    """Failed sign-ins per client address in a sliding window (in memory, thread-safe)."""

    def __init__(self, limit: int, window: dt.timedelta) -> None:
        self._limit = limit
        self._window = window
        self._failures: dict[str, deque[dt.datetime]] = {}
        self._lock = threading.Lock()

    def _prune(self, client: str, now: dt.datetime) -> deque[dt.datetime]:
        times = self._failures.setdefault(client, deque())
        while times and now - times[0] > self._window:
            times.popleft()
        if len(self._failures) > 10_000:  # forget quiet clients so the table cannot grow forever
            for key in [k for k, v in self._failures.items() if not v and k != client]:
                del self._failures[key]
        return times

    def blocked(self, client: str, *, now: dt.datetime) -> bool:
        """True when ``client`` has used up its failures in the window."""
        with self._lock:
            return len(self._prune(client, now)) >= self._limit

    def failed(self, client: str, *, now: dt.datetime) -> None:
        """Count one failed sign-in from ``client``."""
        with self._lock:
            self._prune(client, now).append(now)


def purge_expired(session: Session, settings: SecuritySettings, *, now: dt.datetime) -> int:
    """Delete every session past its idle or absolute limit; returns how many."""
    result = session.execute(
        delete(WebSession).where(
            (WebSession.last_seen_at < now - settings.idle_timeout)
            | (WebSession.created_at < now - settings.absolute_timeout)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
