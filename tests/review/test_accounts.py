"""Accounts: argon2 hashes, roles, disabling, failures that look alike."""

from __future__ import annotations

import pytest
from review_helpers import PASSWORD
from sqlalchemy.orm import Session

from mhsafety.review import accounts, audit_trail
from mhsafety.review.accounts import AccountError, Role


def test_password_is_stored_as_argon2id_and_verified(session: Session) -> None:
    user = accounts.add_user(session, "ana", PASSWORD, Role.REVIEWER, actor="admin")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert accounts.verify_password(session, "ana", PASSWORD) is user
    assert accounts.verify_password(session, "ana", PASSWORD + "x") is None
    assert accounts.verify_password(session, "nobody", PASSWORD) is None


def test_disabled_user_cannot_sign_in_or_work(session: Session) -> None:
    accounts.add_user(session, "ana", PASSWORD, Role.REVIEWER, actor="admin")
    accounts.disable_user(session, "ana", actor="admin")
    assert accounts.verify_password(session, "ana", PASSWORD) is None
    with pytest.raises(AccountError, match="no active user"):
        accounts.require_user(session, "ana")
    accounts.set_active(session, "ana", True, actor="admin")
    assert accounts.verify_password(session, "ana", PASSWORD) is not None


def test_failures_do_the_same_work(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    accounts.add_user(session, "ana", PASSWORD, Role.REVIEWER, actor="admin")
    accounts.add_user(session, "off", PASSWORD, Role.REVIEWER, actor="admin")
    accounts.disable_user(session, "off", actor="admin")
    calls: list[str] = []
    real = accounts._HASHER

    class Counting:
        def verify(self, stored: str, password: str) -> bool:
            calls.append(stored)
            return real.verify(stored, password)

        def check_needs_rehash(self, stored: str) -> bool:
            return real.check_needs_rehash(stored)

    monkeypatch.setattr(accounts, "_HASHER", Counting())
    for name, password in [("ana", "wrong password!"), ("nobody", PASSWORD), ("off", PASSWORD)]:
        assert accounts.verify_password(session, name, password) is None
    assert len(calls) == 3
    assert calls[1] == calls[2] == accounts._DUMMY_HASH
    failed = audit_trail.events(session, action="login.failed")
    assert [e.actor for e in failed] == ["ana", "nobody", "off"]


def test_roles_and_refusals(session: Session) -> None:
    accounts.add_user(session, "ana", PASSWORD, Role.REVIEWER, actor="admin")
    accounts.add_user(session, "jo", PASSWORD, Role.ADJUDICATOR, actor="admin")
    assert accounts.require_user(session, "jo", Role.ADJUDICATOR).username == "jo"
    with pytest.raises(AccountError, match="not adjudicator"):
        accounts.require_user(session, "ana", Role.ADJUDICATOR)
    with pytest.raises(AccountError, match="exists"):
        accounts.add_user(session, "ana", PASSWORD, Role.REVIEWER, actor="admin")
    with pytest.raises(AccountError, match="at least"):
        accounts.add_user(session, "bo", "short", Role.REVIEWER, actor="admin")
    with pytest.raises(AccountError, match="username"):
        accounts.add_user(session, "bad name", PASSWORD, Role.REVIEWER, actor="admin")
    with pytest.raises(ValueError):
        accounts.add_user(session, "cy", PASSWORD, Role("superuser"), actor="admin")
    added = audit_trail.events(session, action="user.added")
    assert [(e.object_id, e.detail["role"]) for e in added] == [
        ("ana", "reviewer"),
        ("jo", "adjudicator"),
    ]


def test_password_change(session: Session) -> None:
    accounts.add_user(session, "ana", PASSWORD, Role.REVIEWER, actor="admin")
    accounts.set_password(session, "ana", "another long password", actor="admin")
    assert accounts.verify_password(session, "ana", PASSWORD) is None
    assert accounts.verify_password(session, "ana", "another long password") is not None
