"""The review web app: FastAPI routes over the review data layer, rendered with Jinja2 + htmx.

Routes and who may use them (the authorization matrix test walks :data:`ROUTES`):

==========================================  =================================================
``GET /healthz``, ``GET /static/...``       anyone (no data)
``GET|POST /login``                          anyone (CSRF by double-submit cookie)
``POST /logout``                             any signed-in user
``GET /``, ``GET /queue``, ``/review/...``   reviewer, adjudicator, admin (own queue only)
``/adjudicate...``                           adjudicator, admin
``/admin...``                                admin
==========================================  =================================================

Anonymous requests for a page are sent to the sign-in page and never see conversation text;
a signed-in user without the role gets 403; a conversation outside the user's own queue is 404.
Every state change needs the session's CSRF token. Pages that show conversations are sent with
``Cache-Control: no-store`` and a strict Content-Security-Policy (scripts from this app only).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response

from mhsafety.review import audit_trail
from mhsafety.review.accounts import (
    USERNAME,
    AccountError,
    Role,
    canonical,
    get_user,
    set_active,
    verify_password,
)
from mhsafety.review.db import session_scope
from mhsafety.review.labels import (
    LEVELS,
    LabelError,
    adjudication_view,
    adjudications,
    agreement,
    get_label,
    resolve_adjudication,
    save_label,
    write_csv,
    write_jsonl,
)
from mhsafety.review.models import Adjudication, Assignment, Conversation, User, WebSession, utcnow
from mhsafety.review.queue import QueueError, assign, item_at, progress, queue_for
from mhsafety.review.web import security
from mhsafety.review.web.forms import CATEGORY_TITLES, NO_RISK, form_values, parse_label_form
from mhsafety.taxonomy import CATEGORIES

HERE = Path(__file__).parent
REVIEWERS = frozenset({Role.REVIEWER, Role.ADJUDICATOR, Role.ADMIN})
ADJUDICATORS = frozenset({Role.ADJUDICATOR, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})

ROUTES: tuple[tuple[str, str, frozenset[Role] | None], ...] = (
    ("GET", "/", REVIEWERS),
    ("GET", "/queue", REVIEWERS),
    ("GET", "/review/next", REVIEWERS),
    ("GET", "/review/{position}", REVIEWERS),
    ("POST", "/review/{position}", REVIEWERS),
    ("GET", "/adjudicate", ADJUDICATORS),
    ("GET", "/adjudicate/{item_id}", ADJUDICATORS),
    ("POST", "/adjudicate/{item_id}", ADJUDICATORS),
    ("GET", "/admin", ADMINS),
    ("POST", "/admin/assign", ADMINS),
    ("POST", "/admin/users/{username}/disable", ADMINS),
    ("POST", "/admin/users/{username}/enable", ADMINS),
    ("GET", "/admin/events", ADMINS),
    ("GET", "/admin/export/labels.csv", ADMINS),
    ("GET", "/admin/export/labels.jsonl", ADMINS),
    ("POST", "/logout", REVIEWERS),
    ("GET", "/login", None),
    ("POST", "/login", None),
    ("GET", "/healthz", None),
    ("GET", "/favicon.ico", None),
)
"""Every route with the roles allowed (None: open to anyone)."""

HTMX_CONFIG = {
    # no page snapshots in the browser's localStorage: they would keep conversation text
    "historyCacheSize": 0,
    "refreshOnHistoryMiss": True,
    # the CSP forbids inline styles and eval; htmx is told not to need them
    "includeIndicatorStyles": False,
    "allowEval": False,
    "allowScriptTags": False,
    "selfRequestsOnly": True,
    # show validation errors (422) and error pages, not only 2xx responses
    "responseHandling": [
        {"code": "204", "swap": False},
        {"code": "[2345]..", "swap": True},
    ],
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass
class AppState:
    """What every request needs: the database, the settings and the sign-in throttle."""

    factory: sessionmaker[Session]
    settings: security.SecuritySettings
    throttle: security.ClientThrottle
    login_lock: threading.Lock = field(default_factory=threading.Lock)
    assign_lock: threading.Lock = field(default_factory=threading.Lock)
    title: str = "mhsafety review"
    double_fraction: float = 0.2
    seed: int = 0
    notices: list[str] = field(default_factory=list)
    """Facts shown to admins (e.g. whether the text was de-identified)."""


@dataclass(frozen=True)
class Principal:
    """The signed-in user of a request."""

    username: str
    role: Role
    csrf_token: str


class SignInRequiredError(Exception):
    """The route needs a signed-in user."""


class ForbiddenError(Exception):
    """The signed-in user lacks the role (or the CSRF token is wrong)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFoundError(Exception):
    """Nothing here for this user."""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its file name: conversation text is data
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        categories=[(str(c), CATEGORY_TITLES[c]) for c in CATEGORIES],
        levels=LEVELS,
        no_risk=NO_RISK,
        htmx_config=json.dumps(HTMX_CONFIG, separators=(",", ":")),
    )
    env.filters["kappa"] = _format_kappa
    return env


def _format_kappa(value: float) -> str:
    return "undefined" if math.isnan(value) else f"{value:.2f}"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.review
    return state


def _database(request: Request) -> Iterator[Session]:
    with session_scope(_state(request).factory) as session:
        yield session


# scope="function": commit before the response is sent, so a redirect sees the change
Db = Annotated[Session, Depends(_database, scope="function")]


def _principal(request: Request, session: Db) -> Principal | None:
    found = security.find_session(
        session,
        request.cookies.get(security.SESSION_COOKIE),
        _state(request).settings,
        now=utcnow(),
    )
    if found is None:
        session.commit()  # keep the deletion of an expired session, whatever the route does
        return None
    row, user = found
    return Principal(user.username, Role(user.role), row.csrf_token)


MaybeUser = Annotated[Principal | None, Depends(_principal)]


def _needs(roles: frozenset[Role]) -> Callable[[Principal | None], Principal]:
    def check(user: MaybeUser) -> Principal:
        if user is None:
            raise SignInRequiredError()
        if user.role not in roles:
            raise ForbiddenError(f"this page is for {' / '.join(sorted(r.value for r in roles))}")
        return user

    return check


AnyRole = Annotated[Principal, Depends(_needs(REVIEWERS))]
Adjudicator = Annotated[Principal, Depends(_needs(ADJUDICATORS))]
Admin = Annotated[Principal, Depends(_needs(ADMINS))]


async def _form(request: Request) -> dict[str, str]:
    data = await request.form()
    return {k: v for k, v in data.items() if isinstance(v, str)}


Form = Annotated[dict[str, str], Depends(_form)]
Position = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
ItemId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


def create_app(
    factory: sessionmaker[Session],
    *,
    settings: security.SecuritySettings | None = None,
    double_fraction: float = 0.2,
    seed: int = 0,
    notices: list[str] | None = None,
) -> FastAPI:
    """The review app on a migrated database.

    Args:
        factory: Session factory of the review database (see :func:`review.db.open_database`).
        settings: Session and throttling limits.
        double_fraction: Default share coded twice when an admin assigns from the web.
        seed: Default seed of web assignments.
        notices: Lines shown on the admin page (de-identification status, the workspace).
    """
    settings = settings or security.SecuritySettings()
    state = AppState(
        factory=factory,
        settings=settings,
        throttle=security.ClientThrottle(settings.failures_per_client, settings.failure_window),
        double_fraction=double_fraction,
        seed=seed,
        notices=list(notices or []),
    )
    env = _environment()
    app = FastAPI(title="mhsafety review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = state
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def check_csrf(request: Request, user: Principal, form: Mapping[str, str]) -> None:
        given = form.get(security.CSRF_FIELD) or request.headers.get(security.CSRF_HEADER)
        if not security.tokens_match(user.csrf_token, given):
            raise ForbiddenError("the form's security token is missing or stale: reload the page")

    def page(
        request: Request,
        template: str,
        user: Principal | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        body = env.get_template(template).render(
            user=user, path=request.url.path, title=state.title, **context
        )
        response = HTMLResponse(body, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    def go(request: Request, url: str) -> Response:
        """Redirect after a form: htmx follows with a client-side navigation."""
        if request.headers.get("HX-Request"):
            response = Response(status_code=204)
            response.headers["HX-Location"] = json.dumps({"path": url, "target": "body"})
            return response
        return RedirectResponse(url, status_code=303)

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(SignInRequiredError)
    async def not_signed_in(request: Request, exc: SignInRequiredError) -> Response:
        target = "/login"
        if request.url.path not in ("/", "/login"):
            target += "?next=" + quote(request.url.path, safe="/")
        if request.headers.get("HX-Request"):
            # htmx (a page or a form whose session ran out): the browser goes to sign-in
            response = Response(status_code=401)
            response.headers["HX-Redirect"] = target
            return response
        if request.method == "GET":
            return RedirectResponse(target, status_code=303)
        return PlainTextResponse("sign in first", status_code=401)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        return page(
            request, "error.html.j2", None, 404, heading="Not found", reason="No such page."
        )

    @app.exception_handler(IntegrityError)
    async def conflict(request: Request, exc: IntegrityError) -> Response:
        return page(
            request,
            "error.html.j2",
            None,
            409,
            heading="Saved twice",
            reason="This was saved at the same moment by another request. Reload the page.",
        )

    @app.exception_handler(ForbiddenError)
    async def forbidden(request: Request, exc: ForbiddenError) -> Response:
        return page(request, "error.html.j2", None, 403, heading="Not allowed", reason=exc.reason)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        return page(
            request, "error.html.j2", None, 404, heading="Not found", reason="Nothing here for you."
        )

    # -- public -------------------------------------------------------------------------------

    @app.get("/healthz")
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    def login_page(
        request: Request, error: str = "", status: int = 200, next_url: str = "/queue"
    ) -> Response:
        token = security.new_token()
        response: Response = page(
            request, "login.html.j2", None, status, csrf=token, error=error, next_url=next_url
        )
        response.set_cookie(
            security.LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            path="/login",
        )
        return response

    @app.get("/login")
    def login_form(request: Request, user: MaybeUser, next: str = "/queue") -> Response:
        if user is not None:
            return RedirectResponse("/queue", status_code=303)
        return login_page(request, next_url=_safe_next(next))

    @app.post("/login")
    def login(request: Request, session: Db, form: Form) -> Response:
        next_url = _safe_next(form.get("next", "/queue"))
        if not security.tokens_match(
            request.cookies.get(security.LOGIN_CSRF_COOKIE), form.get(security.CSRF_FIELD)
        ):
            return login_page(request, "The sign-in form expired: please try again.", 403)
        username = canonical(form.get("username", ""))[:64]
        password = form.get("password", "")
        client = _client(request)
        # one sign-in at a time, checked, verified and committed under the lock: parallel
        # guesses cannot all pass the limits before any failure is counted
        with state.login_lock:
            response = attempt_login(request, session, username, password, client, next_url)
            session.commit()
        return response

    def attempt_login(
        request: Request,
        session: Session,
        username: str,
        password: str,
        client: str,
        next_url: str,
    ) -> Response:
        now = utcnow()
        if state.throttle.blocked(client, now=now) or (
            security.recent_user_failures(session, username, settings.failure_window, now=now)
            >= settings.failures_per_user
        ):
            audit_trail.record(session, username or "?", "login.throttled", "user", username)
            minutes = int(settings.failure_window.total_seconds() // 60)
            throttled = login_page(
                request,
                f"Too many failed sign-ins. Wait {minutes} minutes or ask an admin.",
                429,
                next_url,
            )
            throttled.headers["Retry-After"] = str(int(settings.failure_window.total_seconds()))
            return throttled
        user = verify_password(session, username, password) if username and password else None
        if user is None:
            state.throttle.failed(client, now=now)
            if not username or not password:
                audit_trail.record(session, username or "?", "login.failed", "user", username)
            return login_page(request, "Wrong username or password.", 200, next_url)
        security.purge_expired(session, settings, now=now)
        token, _ = security.start_session(session, user, client)
        response = RedirectResponse(next_url, status_code=303)
        # no max_age: the cookie ends when the browser closes (shared workstations)
        response.set_cookie(
            security.SESSION_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
        )
        response.delete_cookie(security.LOGIN_CSRF_COOKIE, path="/login")
        return response

    # -- any signed-in user ---------------------------------------------------------------

    @app.post("/logout")
    def logout(request: Request, session: Db, user: AnyRole, form: Form) -> Response:
        check_csrf(request, user, form)
        security.end_session(session, request.cookies.get(security.SESSION_COOKIE))
        audit_trail.record(session, user.username, "logout", "user", user.username)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(security.SESSION_COOKIE)
        return response

    @app.get("/")
    def home(user: AnyRole) -> Response:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/queue")
    def my_queue(request: Request, session: Db, user: AnyRole) -> HTMLResponse:
        entries = queue_for(session, user.username)
        done = sum(e.done for e in entries)
        first_open = next((e.position for e in entries if not e.done), None)
        open_items = (
            len(adjudications(session, for_user=user.username)) if user.role in ADJUDICATORS else 0
        )
        return page(
            request,
            "queue.html.j2",
            user,
            entries=entries,
            done=done,
            first_open=first_open,
            open_adjudications=open_items,
        )

    @app.get("/review/next")
    def review_next(request: Request, session: Db, user: AnyRole) -> Response:
        entries = queue_for(session, user.username)
        first_open = next((e.position for e in entries if not e.done), None)
        if first_open is None:
            return RedirectResponse("/queue", status_code=303)
        return RedirectResponse(f"/review/{first_open}", status_code=303)

    def review_page(
        request: Request,
        session: Db,
        user: Principal,
        position: Position,
        values: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        try:
            item = item_at(session, user.username, position)
        except QueueError:
            raise NotFoundError() from None
        refused = values is not None
        if values is None:
            values = form_values(get_label(session, user.username, item.conversation_id))
        audit_trail.record(
            session,
            user.username,
            "conversation.viewed",
            "conversation",
            item.conversation_id,
            {"position": position, "form_refused": refused},
        )
        done = sum(e.done for e in queue_for(session, user.username))
        return page(
            request,
            "review.html.j2",
            user,
            status,
            item=item,
            values=values,
            errors=errors or {},
            done=done,
            action=f"/review/{position}",
            previous=position - 1 if position > 1 else None,
            following=position + 1 if position < item.of else None,
        )

    @app.get("/review/{position}")
    def review_get(
        request: Request, session: Db, user: AnyRole, position: Position
    ) -> HTMLResponse:
        return review_page(request, session, user, position)

    @app.post("/review/{position}")
    def review_post(
        request: Request, session: Db, user: AnyRole, position: Position, form: Form
    ) -> Response:
        check_csrf(request, user, form)
        try:
            item = item_at(session, user.username, position)
        except QueueError:
            raise NotFoundError() from None
        parsed = parse_label_form(form)
        if parsed.label is None:
            return review_page(
                request, session, user, position, parsed.values, parsed.errors, status=422
            )
        try:
            save_label(session, user.username, item.conversation_id, parsed.label)
        except LabelError as exc:
            return review_page(
                request, session, user, position, parsed.values, {"form": str(exc)}, status=409
            )
        entries = queue_for(session, user.username)
        later = [e.position for e in entries if not e.done and e.position > position]
        earlier = [e.position for e in entries if not e.done]
        target = later or earlier
        return go(request, f"/review/{target[0]}" if target else "/queue?finished=1")

    # -- adjudicators ------------------------------------------------------------------------

    @app.get("/adjudicate")
    def adjudication_list(request: Request, session: Db, user: Adjudicator) -> HTMLResponse:
        return page(
            request,
            "adjudicate_list.html.j2",
            user,
            open_items=adjudications(session, status="open", for_user=user.username),
            resolved=adjudications(session, status="resolved", for_user=user.username),
        )

    def adjudication_page(
        request: Request,
        session: Session,
        user: Principal,
        item_id: ItemId,
        values: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        try:
            view = adjudication_view(session, user.username, item_id)
        except QueueError:
            raise NotFoundError() from None
        except AccountError:
            raise ForbiddenError(
                "You coded this conversation: another adjudicator decides it."
            ) from None
        audit_trail.record(
            session,
            user.username,
            "conversation.viewed",
            "conversation",
            view.conversation_id,
            {"adjudication": item_id, "form_refused": values is not None},
        )
        coders = {name: form_values(label) for name, label in view.labels.items()}
        return page(
            request,
            "adjudicate.html.j2",
            user,
            status,
            view=view,
            coders=coders,
            conflicts=[str(c) for c in view.categories],
            values=values or {},
            errors=errors or {},
            action=f"/adjudicate/{item_id}",
        )

    @app.get("/adjudicate/{item_id}")
    def adjudication_get(
        request: Request, session: Db, user: Adjudicator, item_id: ItemId
    ) -> HTMLResponse:
        return adjudication_page(request, session, user, item_id)

    @app.post("/adjudicate/{item_id}")
    def adjudication_post(
        request: Request, session: Db, user: Adjudicator, item_id: ItemId, form: Form
    ) -> Response:
        check_csrf(request, user, form)
        parsed = parse_label_form(form)
        if parsed.label is None:
            return adjudication_page(
                request, session, user, item_id, parsed.values, parsed.errors, status=422
            )
        try:
            resolve_adjudication(session, user.username, item_id, parsed.label)
        except QueueError:
            raise NotFoundError() from None
        except (LabelError, AccountError) as exc:
            return adjudication_page(
                request, session, user, item_id, parsed.values, {"form": str(exc)}, status=409
            )
        remaining = adjudications(session, status="open", for_user=user.username)
        return go(request, f"/adjudicate/{remaining[0][0]}" if remaining else "/adjudicate")

    # -- admins ----------------------------------------------------------------------------------

    @app.get("/admin")
    def admin(request: Request, session: Db, user: Admin) -> HTMLResponse:
        users = session.scalars(select(User).order_by(User.username)).all()
        sessions = {
            int(user_id): int(n)
            for user_id, n in session.execute(
                select(WebSession.user_id, func.count()).group_by(WebSession.user_id)
            )
        }
        conversations = int(session.scalar(select(func.count()).select_from(Conversation)) or 0)
        assigned = int(
            session.scalar(select(func.count(func.distinct(Assignment.conversation_pk)))) or 0
        )
        counts = {
            str(status): int(n)
            for status, n in session.execute(
                select(Adjudication.status, func.count()).group_by(Adjudication.status)
            )
        }
        return page(
            request,
            "admin.html.j2",
            user,
            users=users,
            sessions=sessions,
            progress=progress(session),
            kappas=agreement(session),
            conversations=conversations,
            assigned=assigned,
            adjudication_counts=counts,
            notices=state.notices,
            double_fraction=state.double_fraction,
            seed=state.seed,
            message=_admin_message(request.query_params),
        )

    @app.post("/admin/assign")
    def admin_assign(request: Request, session: Db, user: Admin, form: Form) -> Response:
        check_csrf(request, user, form)
        names = [n for n in form.get("reviewers", "").replace(",", " ").split() if n]
        # one assignment at a time: a double submit must not plan from stale data
        with state.assign_lock:
            try:
                fraction = float(form.get("double_fraction", state.double_fraction))
                seed = int(form.get("seed", state.seed))
                summary = assign(
                    session, names, double_fraction=fraction, seed=seed, actor=user.username
                )
            except (ValueError, AccountError):
                session.rollback()
                return go(request, "/admin?error=assign")
            session.commit()
        return go(
            request, f"/admin?done=assigned&n={summary.conversations}&d={summary.double_coded}"
        )

    def set_user_active(
        request: Request, session: Session, user: Principal, username: str, active: bool
    ) -> Response:
        target = get_user(session, username)
        if target is None:
            raise NotFoundError()
        if target.username == user.username and not active:
            return go(request, "/admin?error=self")
        set_active(session, target.username, active, actor=user.username)
        verb = "enabled" if active else "disabled"
        return go(request, f"/admin?done={verb}&user={quote(target.username)}")

    @app.post("/admin/users/{username}/disable")
    def admin_disable(
        request: Request, session: Db, user: Admin, username: str, form: Form
    ) -> Response:
        check_csrf(request, user, form)
        return set_user_active(request, session, user, username, False)

    @app.post("/admin/users/{username}/enable")
    def admin_enable(
        request: Request, session: Db, user: Admin, username: str, form: Form
    ) -> Response:
        check_csrf(request, user, form)
        return set_user_active(request, session, user, username, True)

    @app.get("/admin/events")
    def admin_events(request: Request, session: Db, user: Admin) -> HTMLResponse:
        events = audit_trail.events(session, newest=500)
        return page(
            request, "events.html.j2", user, events=events, total=audit_trail.count(session)
        )

    def export(session: Session, user: Principal, kind: str, final: bool) -> Response:
        # built in memory: no copy of the labels is left on disk if the download breaks off
        buffer = io.StringIO(newline="")
        count = (
            write_csv(session, buffer, final=final)
            if kind == "csv"
            else write_jsonl(session, buffer)
        )
        audit_trail.record(
            session,
            user.username,
            "labels.exported",
            "labels",
            kind,
            {"rows": count, "final": final},
        )
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return Response(
            buffer.getvalue().encode("utf-8"),
            media_type="text/csv; charset=utf-8" if kind == "csv" else "application/x-ndjson",
            headers={
                "Cache-Control": "no-store",
                "Content-Disposition": f'attachment; filename="labels-{stamp}.{kind}"',
            },
        )

    @app.get("/admin/export/labels.csv")
    def export_labels_csv(session: Db, user: Admin, all: int = 0) -> Response:
        return export(session, user, "csv", final=not all)

    @app.get("/admin/export/labels.jsonl")
    def export_labels_jsonl(session: Db, user: Admin) -> Response:
        return export(session, user, "jsonl", final=False)

    return app


def _admin_message(params: Mapping[str, str]) -> str:
    """The admin page's notice, from fixed codes only (a link cannot plant a message)."""
    done, error = params.get("done", ""), params.get("error", "")
    user = params.get("user", "")
    if error == "assign":
        return (
            "Not assigned: name active reviewers or adjudicators (admins never code), "
            "and a share between 0 and 1."
        )
    if error == "self":
        return "You cannot disable your own account."
    if done == "assigned" and params.get("n", "").isdigit() and params.get("d", "").isdigit():
        return f"Assigned {params['n']} conversations ({params['d']} to two reviewers)."
    if done in ("enabled", "disabled") and USERNAME.match(user):
        return f"{done.capitalize()} {user}."
    return ""


def _safe_next(target: str) -> str:
    """A same-site path to go to after signing in (anything else goes to the queue)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/queue"
    return target if target not in ("/login", "/logout") else "/queue"
