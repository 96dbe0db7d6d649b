"""Run the review app on loopback and talk to it like a browser does (cookies, forms, CSRF)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from review_helpers import PASSWORD
from sqlalchemy.orm import Session, sessionmaker

from mhsafety.review.web.app import create_app
from mhsafety.review.web.security import SecuritySettings
from mhsafety.testing.loopback import serve_in_thread

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def review_server(
    factory: sessionmaker[Session], settings: SecuritySettings | None = None
) -> Iterator[str]:
    """The review app (uvicorn) on an ephemeral loopback port; yields its base URL."""
    app = create_app(factory, settings=settings, notices=["test server"])
    with serve_in_thread(app) as port:
        yield f"http://127.0.0.1:{port}"


def csrf_of(html: str) -> str:
    """The first CSRF token in a page."""
    found = CSRF.search(html)
    if found is None:
        raise AssertionError("no CSRF token in the page")
    return found.group(1)


@dataclass
class Visitor:
    """A browser-like client: keeps cookies, does not follow redirects on its own."""

    client: httpx.Client
    csrf: str = ""

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.client.get(path, **kwargs)  # type: ignore[arg-type]

    def post(
        self, path: str, data: dict[str, str] | None = None, **kwargs: object
    ) -> httpx.Response:
        return self.client.post(path, data=data or {}, **kwargs)  # type: ignore[arg-type]

    def submit(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        """POST a form with this session's CSRF token."""
        return self.post(path, {"csrf_token": self.csrf, **(data or {})})


def visitor(base_url: str) -> Visitor:
    return Visitor(httpx.Client(base_url=base_url, follow_redirects=False, timeout=30))


def sign_in(base_url: str, username: str, password: str = PASSWORD) -> Visitor:
    """A visitor signed in as ``username`` (fails the test if sign-in fails)."""
    v = visitor(base_url)
    form = v.get("/login")
    response = v.post(
        "/login",
        {"csrf_token": csrf_of(form.text), "username": username, "password": password},
    )
    assert response.status_code == 303, response.text[:500]
    page = v.get("/queue")
    assert page.status_code == 200, page.text[:500]
    v.csrf = csrf_of(page.text)
    return v


def label_form(**overrides: str) -> dict[str, str]:
    """A complete label form: no risk anywhere, unless overridden."""
    form = {}
    for c in ("suicide", "nssi", "eating_disorder", "substance"):
        form[f"level_{c}"] = "none"
    form.update(overrides)
    return form
