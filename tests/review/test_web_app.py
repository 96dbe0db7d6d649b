"""The review web app over real HTTP on loopback, on SQLite and PostgreSQL.

Authorization over every route and role, CSRF, sessions, sign-in throttling, blinding, escaping,
double coding to adjudication, and labels out.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from markupsafe import escape
from review_helpers import PASSWORD, Spec, add_users, build_workspace
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from web_helpers import Visitor, csrf_of, label_form, review_server, sign_in, visitor

from mhsafety.review import accounts, audit_trail, db, queue
from mhsafety.review.labels import (
    CategoryAnswer,
    LabelInput,
    adjudications,
    label_rows,
    save_label,
    to_label_set,
)
from mhsafety.review.models import Assignment, Conversation, User, WebSession
from mhsafety.review.web import HTMX_SHA256
from mhsafety.review.web.app import ROUTES, create_app
from mhsafety.review.web.security import SecuritySettings
from mhsafety.taxonomy import CATEGORIES, Category

SECRET = "UNIQUE-CONVERSATION-TEXT"
SPECS = [Spec(f"ID-F{i:02d}", "flagged", ("suicide",), text=f"{SECRET} {i}") for i in range(6)] + [
    Spec(f"ID-U{i:02d}", "unflagged-low", text=f"{SECRET} {i + 6}") for i in range(6)
]
SPECS.append(Spec("ID-X00", "unflagged-low", text="<script>alert('x')</script> & <b>bold</b>"))
HIDDEN = ("stratum", "flagged", "unflagged", "score", "inclusion", "crisis_int", "id-")
"""Words no reviewer page may contain (``id-`` starts every conversation id here)."""


@dataclass
class Site:
    """A running review app on a database with users and an assigned sample."""

    base_url: str
    factory: sessionmaker[Session]


def _prepare(engine: Engine, tmp_path: Path) -> sessionmaker[Session]:
    factory = db.session_factory(engine)
    with db.session_scope(factory) as session:
        add_users(session, ["ana", "ben"], adjudicators=["judy"])
        queue.import_workspace(session, build_workspace(tmp_path / "ws", SPECS), actor="admin")
        queue.assign(session, ["ana", "ben"], double_fraction=0.5, seed=1, actor="admin")
    return factory


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Iterator[Site]:
    factory = _prepare(engine, tmp_path)
    with review_server(factory) as base_url:
        yield Site(base_url, factory)


def _positions(factory: sessionmaker[Session], username: str) -> dict[str, int]:
    """conversation id -> position in the user's queue."""
    with factory() as session:
        user = accounts.require_user(session, username)
        rows = session.execute(
            select(Conversation.conversation_id, Assignment.position)
            .join(Assignment, Assignment.conversation_pk == Conversation.id)
            .where(Assignment.reviewer_id == user.id)
        ).all()
    return {str(c): int(p) for c, p in rows}


def _shared(factory: sessionmaker[Session]) -> list[str]:
    """Conversations both ana and ben code."""
    ana, ben = _positions(factory, "ana"), _positions(factory, "ben")
    return sorted(set(ana) & set(ben))


# -- authorization ------------------------------------------------------------------------

ROLE_USERS = {"anonymous": None, "reviewer": "ana", "adjudicator": "judy", "admin": "admin"}
CONCRETE = {
    "{position}": "1",
    "{item_id}": "999",
    "{username}": "nobody",
}


def _open_conflict(factory: sessionmaker[Session]) -> int:
    """Make ana and ben disagree on a conversation they share; the adjudication item's id."""
    cid = _shared(factory)[0]
    with db.session_scope(factory) as session:
        risky = {c: CategoryAnswer(False) for c in CATEGORIES}
        risky[Category.SUICIDE] = CategoryAnswer(True, "high", "no")
        save_label(session, "ana", cid, LabelInput(risky))
        result = save_label(
            session, "ben", cid, LabelInput({c: CategoryAnswer(False) for c in CATEGORIES})
        )
    assert result.adjudication_id is not None
    return result.adjudication_id


def test_every_route_is_in_the_matrix() -> None:
    app = create_app(db.session_factory(db.make_engine("sqlite://")))
    served = {
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", set()) or set()
        if method in ("GET", "POST")
    }
    served -= {("GET", "/static")}
    assert served == {(m, p) for m, p, _ in ROUTES}


def test_authorization_matrix(site: Site) -> None:
    item_id = _open_conflict(site.factory)
    concrete = {**CONCRETE, "{item_id}": str(item_id)}
    visitors: dict[str, Visitor] = {
        role: (visitor(site.base_url) if name is None else sign_in(site.base_url, name))
        for role, name in ROLE_USERS.items()
    }
    checked = 0
    for method, route, allowed in ROUTES:
        if route == "/logout":
            continue  # signing out ends the session the rest of the matrix uses; tested below
        path = route
        for placeholder, value in concrete.items():
            path = path.replace(placeholder, value)
        for role, v in visitors.items():
            if method == "GET":
                response = v.get(path)
            elif route == "/login":
                form = visitor(site.base_url).get("/login") if role != "anonymous" else None
                token = csrf_of((form or v.get("/login")).text)
                response = v.post(
                    path, {"csrf_token": token, "username": "nobody", "password": "wrong password"}
                )
                if role != "anonymous":  # a signed-in browser has no sign-in form cookie
                    assert response.status_code == 403 and SECRET not in response.text
                    checked += 1
                    continue
            else:
                response = v.submit(path)
            status = response.status_code
            assert SECRET not in response.text or (allowed is not None and role != "anonymous"), (
                method,
                path,
                role,
            )
            if allowed is None:
                assert status not in (401, 403), (method, path, role, status)
            elif role == "anonymous":
                if method == "GET":
                    assert status == 303, (method, path, role, status)
                    assert response.headers["location"].startswith("/login")
                else:
                    assert status == 401, (method, path, role, status)
            elif role in {r.value for r in allowed}:
                assert status not in (401, 403), (method, path, role, status, response.text[:300])
            else:
                assert status == 403, (method, path, role, status)
            checked += 1
    assert checked == (len(ROUTES) - 1) * len(ROLE_USERS)


def test_each_reviewer_reaches_only_their_own_queue(site: Site) -> None:
    texts = {s.id: s.text for s in SPECS}
    for name in ("ana", "ben"):
        v = sign_in(site.base_url, name)
        mine = _positions(site.factory, name)
        others = {cid for cid in texts if cid not in mine}
        assert others, "each reviewer must lack some conversations for this test to mean much"
        for cid, position in mine.items():
            page = v.get(f"/review/{position}").text
            assert str(escape(texts[cid])) in page
            assert not any(str(escape(texts[o])) in page for o in others)
        beyond = len(mine) + 1
        assert v.get(f"/review/{beyond}").status_code == 404
        assert v.submit(f"/review/{beyond}", label_form()).status_code == 404
        for bad in ("0", "-1", "99999999999999999999", "abc"):
            assert v.get(f"/review/{bad}").status_code == 404, bad
    assert sign_in(site.base_url, "judy").get("/adjudicate/99999999999999999999").status_code == 404


# -- sessions, CSRF, throttling -----------------------------------------------------------------


def test_cookies_are_httponly_samesite_and_only_digests_are_stored(site: Site) -> None:
    v = visitor(site.base_url)
    form = v.get("/login")
    assert "httponly" in form.headers["set-cookie"].lower()
    response = v.post(
        "/login",
        {"csrf_token": csrf_of(form.text), "username": "ana", "password": PASSWORD},
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "mhs_session=" in cookie
    token = v.client.cookies["mhs_session"]
    with site.factory() as session:
        stored = session.scalars(select(WebSession.token_sha256)).all()
    assert token not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored


def test_csrf_is_required_on_every_form(site: Site) -> None:
    ana = sign_in(site.base_url, "ana")
    ben = sign_in(site.base_url, "ben")
    assert ana.post("/review/1", label_form()).status_code == 403
    assert ana.post("/review/1", {"csrf_token": ben.csrf, **label_form()}).status_code == 403
    assert ana.post("/review/1", {"csrf_token": "", **label_form()}).status_code == 403
    header = ana.post("/review/1", label_form(), headers={"X-CSRF-Token": ana.csrf})
    assert header.status_code == 303
    assert ana.submit("/review/1", label_form()).status_code == 303
    admin = sign_in(site.base_url, "admin")
    assert admin.post("/admin/users/ben/disable", {}).status_code == 403
    assert admin.post("/logout", {}).status_code == 403
    with site.factory() as session:
        assert accounts.require_user(session, "ben").active
    # the sign-in form: a token without its cookie (or none) is refused
    stranger = visitor(site.base_url)
    token = csrf_of(visitor(site.base_url).get("/login").text)
    refused = stranger.post(
        "/login", {"csrf_token": token, "username": "ana", "password": PASSWORD}
    )
    assert refused.status_code == 403
    assert "mhs_session" not in stranger.client.cookies


def test_sign_out_and_disabling_end_sessions(site: Site) -> None:
    ana = sign_in(site.base_url, "ana")
    old_cookie = ana.client.cookies["mhs_session"]
    assert ana.submit("/logout").status_code == 303
    replay = visitor(site.base_url)
    replay.client.cookies.set("mhs_session", old_cookie)
    assert replay.get("/queue").status_code == 303
    ben = sign_in(site.base_url, "ben")
    admin = sign_in(site.base_url, "admin")
    assert admin.submit("/admin/users/ben/disable").status_code == 303
    assert ben.get("/queue").status_code == 303
    with site.factory() as session:
        assert not session.scalars(
            select(WebSession).join(User).where(User.username == "ben")
        ).all()
    v = visitor(site.base_url)
    page = v.post(
        "/login",
        {"csrf_token": csrf_of(v.get("/login").text), "username": "ben", "password": PASSWORD},
    )
    assert page.status_code == 200 and "Wrong username or password" in page.text


def test_idle_sessions_expire(engine: Engine, tmp_path: Path) -> None:
    factory = _prepare(engine, tmp_path)
    settings = SecuritySettings(idle_timeout=dt.timedelta(seconds=1))
    with review_server(factory, settings) as base_url:
        ana = sign_in(base_url, "ana")
        with db.session_scope(factory) as session:
            for row in session.scalars(select(WebSession)):
                row.last_seen_at = row.last_seen_at - dt.timedelta(seconds=5)
        assert ana.get("/queue").status_code == 303


def test_sign_in_is_throttled_per_user_and_recorded(engine: Engine, tmp_path: Path) -> None:
    factory = _prepare(engine, tmp_path)
    settings = SecuritySettings(failures_per_user=3, failures_per_client=6)
    with review_server(factory, settings) as base_url:

        def attempt(username: str, password: str) -> int:
            v = visitor(base_url)
            token = csrf_of(v.get("/login").text)
            response = v.post(
                "/login", {"csrf_token": token, "username": username, "password": password}
            )
            return response.status_code

        assert [attempt("ana", "not the password") for _ in range(3)] == [200, 200, 200]
        assert attempt("ana", PASSWORD) == 429  # even the right password waits
        assert attempt("ben", PASSWORD) == 303  # another account is not locked out
        assert [attempt("ben", "wrong again") for _ in range(3)] == [200, 200, 200]
        assert attempt("judy", PASSWORD) == 429  # six failures from this client
    with factory() as session:
        actions = [e.action for e in audit_trail.events(session, object_type="user")]
        details = json.dumps([e.detail for e in audit_trail.events(session)])
    assert actions.count("login.failed") == 6
    assert actions.count("login.throttled") == 2
    assert "correct horse" not in details


def test_next_after_sign_in_stays_on_this_site(site: Site) -> None:
    v = visitor(site.base_url)
    for target, expected in [
        ("/admin", "/admin"),
        ("https://evil.example/", "/queue"),
        ("//evil.example/", "/queue"),
        ("/\\evil.example/", "/queue"),
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),  # a path on this site, not a host
        ("javascript:alert(1)", "/queue"),
    ]:
        token = csrf_of(v.get("/login").text)
        response = v.post(
            "/login",
            {"csrf_token": token, "username": "admin", "password": PASSWORD, "next": target},
        )
        assert response.headers["location"] == expected
        v.client.cookies.clear()


# -- what a reviewer sees ------------------------------------------------------------------------


def test_review_page_is_blind_escaped_and_not_cached(site: Site) -> None:
    ana = sign_in(site.base_url, "ana")
    ben = sign_in(site.base_url, "ben")
    shared = _shared(site.factory)[0]
    ben_position = _positions(site.factory, "ben")[shared]
    high = label_form(level_suicide="high", intervened_suicide="no", note="BEN-NOTE")
    assert ben.submit(f"/review/{ben_position}", high).status_code == 303
    pages = [ana.get(f"/review/{p}") for p in sorted(_positions(site.factory, "ana").values())]
    pages += [ana.get("/queue"), ana.get("/review/next")]
    for response in pages:
        assert response.status_code in (200, 303)
        assert response.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in response.headers["content-security-policy"]
        text = response.text.lower() + response.headers.get("location", "").lower()
        for hidden in HIDDEN:
            assert hidden not in text, hidden
        assert "ben-note" not in text and ">ben<" not in text
    ana_pos = _positions(site.factory, "ana")[shared]
    fresh = ana.get(f"/review/{ana_pos}").text
    assert 'value="high" checked' not in fresh  # ben's answer is not prefilled for ana


def test_conversation_text_is_escaped(site: Site) -> None:
    holder = "ana" if "ID-X00" in _positions(site.factory, "ana") else "ben"
    v = sign_in(site.base_url, holder)
    raw = v.get(f"/review/{_positions(site.factory, holder)['ID-X00']}").text
    assert "<script>alert" not in raw
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;" in raw


def test_views_and_labels_go_to_the_audit_trail(site: Site) -> None:
    ana = sign_in(site.base_url, "ana")
    ana.get("/review/1")
    first = ana.submit("/review/1", label_form(level_nssi="low", intervened_nssi="no"))
    again = ana.submit(
        "/review/1",
        label_form(level_nssi="low", intervened_nssi="yes", appropriate_nssi="partial"),
    )
    assert (first.status_code, again.status_code) == (303, 303), again.text[:400]
    with site.factory() as session:
        mine = audit_trail.events(session, actor="ana")
    actions = [e.action for e in mine]
    assert actions[:1] == ["login.succeeded"]
    assert "conversation.viewed" in actions
    assert actions.count("label.created") == 1
    assert actions.count("label.revised") == 1
    assert all(e.at.tzinfo is not None for e in mine)


def test_incomplete_label_is_refused_with_reasons_and_kept(site: Site) -> None:
    ana = sign_in(site.base_url, "ana")
    partial = label_form(level_suicide="moderate", intervened_suicide="yes", note="keep me")
    del partial["level_substance"]
    response = ana.submit("/review/1", partial)
    assert response.status_code == 422
    assert "Substance use: choose no risk or a risk level" in response.text
    assert "Suicide: was the intervention appropriate?" in response.text
    assert "keep me" in response.text and 'value="moderate" checked' in response.text
    with site.factory() as session:
        assert not label_rows(session)


def test_queue_resumes_and_shows_progress(site: Site) -> None:
    ana = sign_in(site.base_url, "ana")
    first = ana.get("/review/next")
    assert first.headers["location"] == "/review/1"
    assert ana.submit("/review/1", label_form()).headers["location"] == "/review/2"
    assert ana.submit("/review/2", label_form()).headers["location"] == "/review/3"
    again = sign_in(site.base_url, "ana")
    assert again.get("/review/next").headers["location"] == "/review/3"
    total = len(_positions(site.factory, "ana"))
    assert f"<strong>2</strong> of <strong>{total}</strong> done" in again.get("/queue").text


# -- double coding, adjudication, labels out -----------------------------------------------------


def test_conflict_goes_to_adjudication_and_the_adjudicator_decides(site: Site) -> None:
    shared = _shared(site.factory)
    assert shared
    cid = shared[0]
    ana, ben = sign_in(site.base_url, "ana"), sign_in(site.base_url, "ben")
    ana_pos, ben_pos = _positions(site.factory, "ana")[cid], _positions(site.factory, "ben")[cid]
    ana.submit(f"/review/{ana_pos}", label_form(level_suicide="high", intervened_suicide="no"))
    ben.submit(f"/review/{ben_pos}", label_form())
    locked = ana.get(f"/review/{ana_pos}").text
    assert 'id="locked"' in locked and "label-form" not in locked
    assert "adjudicat" not in locked.lower() and "disagree" not in locked.lower()
    assert ana.submit(f"/review/{ana_pos}", label_form()).status_code == 409

    judy = sign_in(site.base_url, "judy")
    listing = judy.get("/adjudicate").text
    assert cid not in listing  # items, not conversation ids
    item = int(listing.split('href="/adjudicate/')[1].split('"')[0])
    page = judy.get(f"/adjudicate/{item}").text
    assert "coders disagree" in page and "A: risk high" in page and "B: risk none" in page
    assert ">ana<" not in page and ">ben<" not in page
    decided = label_form(level_suicide="moderate", intervened_suicide="no")
    assert judy.submit(f"/adjudicate/{item}", decided).status_code == 303
    assert judy.submit(f"/adjudicate/{item}", decided).status_code == 409
    with site.factory() as session:
        rows = [r for r in label_rows(session) if r["conversation_id"] == cid]
        assert [(r["reviewer"], r["kind"], r["level_suicide"]) for r in rows] == [
            ("judy", "adjudication", "moderate")
        ]
        assert to_label_set(session).labels[cid].risk["suicide"] is True


def test_admin_sees_agreement_and_exports_what_estimate_reads(site: Site) -> None:
    ana, ben = sign_in(site.base_url, "ana"), sign_in(site.base_url, "ben")
    for name, v in (("ana", ana), ("ben", ben)):
        for cid, position in _positions(site.factory, name).items():
            risky = cid.startswith("ID-F") and not (name == "ben" and cid == "ID-F00")
            form = (
                label_form(level_suicide="low", intervened_suicide="yes", appropriate_suicide="yes")
                if risky
                else label_form()
            )
            assert v.submit(f"/review/{position}", form).status_code == 303
    admin = sign_in(site.base_url, "admin")
    page = admin.get("/admin").text
    assert "Cohen" in page and 'id="agreement"' in page
    with site.factory() as session:
        rows = label_rows(session)
    exported = admin.get("/admin/export/labels.csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert list(csv.DictReader(io.StringIO(exported.text))) == rows
    lines = admin.get("/admin/export/labels.jsonl").text.splitlines()
    with site.factory() as session:
        assert len(lines) == len(label_rows(session, final=False))
    assert {json.loads(line)["kind"] for line in lines} == {"review"}
    with site.factory() as session:
        assert [e.action for e in audit_trail.events(session, actor="admin")].count(
            "labels.exported"
        ) == 2


def test_admin_assigns_from_the_web(engine: Engine, tmp_path: Path) -> None:
    factory = db.session_factory(engine)
    with db.session_scope(factory) as session:
        add_users(session, ["ana", "ben"])
        queue.import_workspace(session, build_workspace(tmp_path / "ws", SPECS), actor="admin")
    with review_server(factory) as base_url:
        admin = sign_in(base_url, "admin")
        response = admin.submit(
            "/admin/assign", {"reviewers": "ana ben", "double_fraction": "0.25", "seed": "4"}
        )
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin?done=assigned&n=13&d=")
        bad = admin.submit("/admin/assign", {"reviewers": "ghost", "double_fraction": "0.2"})
        assert bad.headers["location"] == "/admin?error=assign"
    assert len(_positions(factory, "ana")) + len(_positions(factory, "ben")) > len(SPECS)


def test_static_files_are_the_vendored_htmx(site: Site) -> None:
    v = visitor(site.base_url)
    served = v.get("/static/htmx.min.js")
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == HTMX_SHA256
    assert v.get("/static/../app.py").status_code == 404
    assert v.get("/healthz").text == "ok"


def test_every_form_refuses_a_missing_token(site: Site) -> None:
    item_id = _open_conflict(site.factory)
    who = {
        frozenset({"reviewer", "adjudicator", "admin"}): "ana",
        frozenset({"adjudicator", "admin"}): "judy",
    }
    admin = sign_in(site.base_url, "admin")
    posts = [(p, roles) for m, p, roles in ROUTES if m == "POST" and roles is not None]
    assert len(posts) == 6
    with site.factory() as session:
        before = audit_trail.count(session)
    for route, roles in posts:
        path = route.replace("{position}", "1").replace("{item_id}", str(item_id))
        path = path.replace("{username}", "ben")
        name = who.get(frozenset(r.value for r in roles), "admin")
        v = admin if name == "admin" else sign_in(site.base_url, name)
        form = label_form(level_suicide="low", intervened_suicide="no")
        form |= {"reviewers": "ana", "double_fraction": "0"}
        assert v.post(path, form).status_code == 403, path
        assert v.post(path, {"csrf_token": "forged", **form}).status_code == 403, path
    with site.factory() as session:
        assert accounts.require_user(session, "ben").active
        assert label_rows(session, final=False) == label_rows(session, final=False)
        changes = [
            e.action
            for e in audit_trail.events(session)[before:]
            if not e.action.startswith(("login.", "conversation.viewed"))
        ]
    assert changes == []


def test_usernames_are_case_insensitive(site: Site) -> None:
    v = sign_in(site.base_url, "  ANA ")
    assert ">ana · reviewer<" in v.get("/queue").text.replace("</span>", "<")
    with site.factory() as session, pytest.raises(accounts.AccountError, match="exists"):
        accounts.add_user(session, "Ben", PASSWORD, accounts.Role.REVIEWER, actor="admin")


def test_admin_notices_come_from_fixed_codes_only(site: Site) -> None:
    admin = sign_in(site.base_url, "admin")
    planted = admin.get("/admin?message=Send+your+password+to+x&done=assigned&n=1%3Cb%3E&d=0")
    assert "Send your password" not in planted.text and 'id="message"' not in planted.text
    assert "Assigned 3 conversations (1 to two" in admin.get("/admin?done=assigned&n=3&d=1").text


def test_an_adjudicator_who_coded_never_sees_the_other_label(
    engine: Engine, tmp_path: Path
) -> None:
    factory = db.session_factory(engine)
    with db.session_scope(factory) as session:
        add_users(session, ["ana"], adjudicators=["judy", "kai"])
        queue.import_workspace(session, build_workspace(tmp_path / "ws", SPECS), actor="admin")
        queue.assign(session, ["ana", "judy"], double_fraction=1.0, seed=2, actor="admin")
        cid = SPECS[0].id
        save_label(session, "ana", cid, LabelInput({c: CategoryAnswer(False) for c in CATEGORIES}))
        risky = {c: CategoryAnswer(False) for c in CATEGORIES}
        risky[Category.SUICIDE] = CategoryAnswer(True, "low", "no")
        item_id = save_label(session, "judy", cid, LabelInput(risky)).adjudication_id
        assert item_id is not None
    with review_server(factory) as base_url:
        judy = sign_in(base_url, "judy")
        assert f'href="/adjudicate/{item_id}"' not in judy.get("/adjudicate").text
        refused = judy.get(f"/adjudicate/{item_id}")
        assert refused.status_code == 403 and "risk none" not in refused.text
        kai = sign_in(base_url, "kai")
        assert kai.get(f"/adjudicate/{item_id}").status_code == 200
        admin = sign_in(base_url, "admin")
        assigned = admin.submit("/admin/assign", {"reviewers": "admin", "double_fraction": "0"})
        assert assigned.headers["location"] == "/admin?error=assign"  # admins never code
    with factory() as session:
        assert adjudications(session, for_user="judy") == []


# -- races: what two people do at the same moment -------------------------------------------------


def test_coders_saving_at_once_still_open_the_adjudication(engine: Engine, tmp_path: Path) -> None:
    factory = db.session_factory(engine)
    with db.session_scope(factory) as session:
        add_users(session, ["ana", "ben"], adjudicators=["judy", "kai"])
        queue.import_workspace(session, build_workspace(tmp_path / "ws", SPECS), actor="admin")
        queue.assign(session, ["ana", "ben"], double_fraction=1.0, seed=2, actor="admin")
    with review_server(factory) as base_url:
        ana, ben = sign_in(base_url, "ana"), sign_in(base_url, "ben")
        pairs = [
            (_positions(factory, "ana")[s.id], _positions(factory, "ben")[s.id]) for s in SPECS
        ]
        yes = label_form(level_suicide="high", intervened_suicide="no")

        def both(pair: tuple[int, int]) -> tuple[int, int]:
            with ThreadPoolExecutor(2) as pool:
                a = pool.submit(ana.submit, f"/review/{pair[0]}", yes)
                b = pool.submit(ben.submit, f"/review/{pair[1]}", label_form())
                return a.result().status_code, b.result().status_code

        statuses = [both(pair) for pair in pairs]
        assert all(s == (303, 303) for s in statuses), statuses
        judy, kai = sign_in(base_url, "judy"), sign_in(base_url, "kai")
        with factory() as session:
            items = adjudications(session)
        assert len(items) == len(SPECS)  # every disagreement reached an adjudicator
        decided = label_form(level_suicide="low", intervened_suicide="no")
        with ThreadPoolExecutor(2) as pool:
            results = [
                (pool.submit(judy.submit, f"/adjudicate/{i}", decided),
                 pool.submit(kai.submit, f"/adjudicate/{i}", decided))
                for i, _ in items
            ]  # fmt: skip
            codes = sorted(
                sorted((a.result().status_code, b.result().status_code)) for a, b in results
            )
        assert all(c == [303, 409] for c in codes), codes
    with factory() as session:
        final = label_rows(session)
    assert len(final) == len(SPECS)
    assert {r["kind"] for r in final} == {"adjudication"}


def test_parallel_guesses_do_not_beat_the_sign_in_limit(engine: Engine, tmp_path: Path) -> None:
    factory = _prepare(engine, tmp_path)
    settings = SecuritySettings(failures_per_user=5, failures_per_client=100)
    with review_server(factory, settings) as base_url:
        guessers = [visitor(base_url) for _ in range(16)]
        tokens = [csrf_of(g.get("/login").text) for g in guessers]

        def guess(i: int) -> int:
            form = {"csrf_token": tokens[i], "username": "ana", "password": f"guess number {i}"}
            return guessers[i].post("/login", form).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(guess, range(16)))
    assert codes.count(200) == 5 and codes.count(429) == 11, codes
