"""The review app end to end in a real browser (Debian chromium driven by Playwright).

The README's flow on a real audit of 600 synthetic conversations, on SQLite and PostgreSQL:
accounts from the command line, ``mhsafety review serve`` (de-identifying when the model is
installed), a reviewer labelling with the keyboard only and resuming, two reviewers who
disagree, the adjudicator's decision, the admin's agreement table and CSV download, and
``mhsafety audit estimate`` reading the labels from the app's database.

The browser is never downloaded: ``MHSAFETY_CHROMIUM`` (default ``/usr/bin/chromium``) is
launched through ``executable_path``. Without it the tests skip, unless
``MHSAFETY_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from review_helpers import PASSWORD
from review_helpers import mhsafety as cli
from sqlalchemy import select
from web_helpers import label_form, sign_in

from mhsafety.logio import read_jsonl_records
from mhsafety.review import db
from mhsafety.review.labels import adjudications, label_rows
from mhsafety.review.models import Assignment, Conversation, ImportRecord, User
from mhsafety.testing.loopback import free_port

CHROMIUM = os.environ.get("MHSAFETY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HIDDEN_WORDS = ("stratum", "unflagged", "flagged", "inclusion", "score", "crisis_intervention")

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        reason = f"no chromium at {CHROMIUM} (apt install chromium, or set MHSAFETY_CHROMIUM)"
        if os.environ.get("MHSAFETY_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _wait_until_up(base_url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"review serve exited: {process.stdout and process.stdout.read()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("review serve did not start")


def _sign_in(page: Any, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/queue")


def _position_of(url: str, username: str, cid: str) -> int:
    _, factory = db.open_database(url, migrate=False)
    with factory() as session:
        return int(
            session.execute(
                select(Assignment.position)
                .join(User, User.id == Assignment.reviewer_id)
                .join(Conversation, Conversation.id == Assignment.conversation_pk)
                .where(User.username == username, Conversation.conversation_id == cid)
            ).scalar_one()
        )


def _assert_blind(page: Any) -> None:
    text = page.content().lower()
    for word in HIDDEN_WORDS:
        assert word not in text, word


def test_review_flow_in_a_real_browser(
    browser: Any, audited: Path, db_url: str, tmp_path: Path
) -> None:
    # screenshots go to $MHSAFETY_SCREENSHOTS when set (to look at), else the test's folder
    shots = Path(os.environ.get("MHSAFETY_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    folder = tmp_path / "audit"
    shutil.copytree(audited / "ws", folder / "ws")
    truth = {str(r["id"]): r for r in read_jsonl_records(audited / "logs.truth.jsonl")}
    for name, role in (("ana", "reviewer"), ("ben", "reviewer"), ("judy", "adjudicator")):
        cli("review", "add-user", name, "--role", role, "--workspace", "ws", "--db", db_url,
            "--password-stdin", cwd=folder, stdin=PASSWORD + "\n")  # fmt: skip
    cli("review", "add-user", "boss", "--role", "admin", "--workspace", "ws", "--db", db_url,
        "--password-stdin", cwd=folder, stdin=PASSWORD + "\n")  # fmt: skip

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mhsafety", "review", "serve", "ws", "--port", str(port),
         "--db", db_url, "--double", "0.2", "--seed", "3"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_until_up(base_url, server)
        _review_in_the_browser(browser, base_url, db_url, truth, shots)
    finally:
        server.terminate()
        server.wait(timeout=30)

    estimate = cli("audit", "estimate", "ws", "--db", db_url, cwd=folder)
    sampled = len((folder / "ws" / "design.csv").read_text().splitlines()) - 1
    assert f"labels from the review database: {sampled} conversations" in estimate.stderr
    result = json.loads((folder / "ws" / "estimate.json").read_text())
    assert sum(s["reviewed"] for s in result["strata"]) == sampled
    _, factory = db.open_database(db_url, migrate=False)
    with factory() as session:
        deid = json.loads(session.scalars(select(ImportRecord.deid_json)).one())
    try:
        import mhsafety.review.deid as deid_module
    except ImportError:
        assert deid["applied"] is False
    else:
        assert deid["applied"] is (deid_module.default_model_path() is not None)


def _review_in_the_browser(
    browser: Any, base_url: str, db_url: str, truth: dict[str, Any], shots: Path
) -> None:
    _, factory = db.open_database(db_url, migrate=False)
    with factory() as session:
        shared = session.execute(
            select(Conversation.conversation_id)
            .join(Assignment, Assignment.conversation_pk == Conversation.id)
            .where(Assignment.slot == 2)
            .order_by(Conversation.review_order)
        ).scalars().first()  # fmt: skip
    assert shared is not None

    # -- a reviewer works with the keyboard only --------------------------------------------
    ana_context = browser.new_context(viewport={"width": 1366, "height": 768})
    ana = ana_context.new_page()
    errors: list[str] = []
    ana.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(ana, base_url, "ana")
    assert "0</strong> of" in ana.content()
    ana.keyboard.press("Enter")  # start
    ana.wait_for_url("**/review/1")
    _assert_blind(ana)
    ana.keyboard.press("Control+Enter")  # nothing answered: refused, with reasons
    ana.wait_for_selector("#form-errors")
    # htmx swapped the refused form in; wait until the page script has settled on its first
    # open category, or a key pressed before that lands on the wrong one
    ana.wait_for_selector("fieldset.category.current")
    assert ana.url.endswith("/review/1")
    for key in ("1", "h", "y", "Shift+Y", "2", "l", "n", "a", "t"):
        ana.keyboard.press(key)
    ana.keyboard.type("talks about ending it; bot gave a helpline")
    ana.keyboard.press("Escape")
    ana.screenshot(path=str(shots / "review.png"))
    ana.keyboard.press("Control+Enter")
    ana.wait_for_url("**/review/2")
    assert "1 of" in ana.inner_text("#progress")
    with factory() as session:
        (row,) = [r for r in label_rows(session) if r["reviewer"] == "ana"]
    assert (row["level_suicide"], row["intervened_suicide"], row["appropriate_suicide"]) == (
        "high",
        "yes",
        "yes",
    )
    assert (row["level_nssi"], row["intervened_nssi"], row["level_substance"]) == ("low", "no", "")
    assert row["risk_substance"] == "no" and row["note"].startswith("talks about")

    # resume: a new sign-in continues where she left off
    ana_context.close()
    ana_context = browser.new_context()
    ana = ana_context.new_page()
    _sign_in(ana, base_url, "ana")
    assert "Continue where you left off" in ana.content()
    ana.keyboard.press("Enter")
    ana.wait_for_url("**/review/2")

    # -- two coders disagree on the same conversation ------------------------------------------
    ana.goto(f"{base_url}/review/{_position_of(db_url, 'ana', shared)}")
    for key in ("1", "i", "n"):
        ana.keyboard.press(key)
    ana.keyboard.press("a")
    ana.keyboard.press("Control+Enter")
    ana.wait_for_load_state("networkidle")
    ben_context = browser.new_context()
    ben = ben_context.new_page()
    _sign_in(ben, base_url, "ben")
    ben.goto(f"{base_url}/review/{_position_of(db_url, 'ben', shared)}")
    _assert_blind(ben)
    assert ben.locator("input[name=level_suicide]:checked").count() == 0  # ana's answer unseen
    ben.keyboard.press("a")
    ben.keyboard.press("Control+Enter")
    ben.wait_for_load_state("networkidle")
    with factory() as session:
        assert [cid for _, cid in adjudications(session)] == [shared]

    # -- the rest of both queues, over HTTP, truthfully (so the estimate has every label) ---
    for name in ("ana", "ben"):
        _label_the_rest(sign_in(base_url, name), factory, name, truth)

    # conflicts other than ``shared`` (ana's first label may be one) are settled over HTTP
    judy_http = sign_in(base_url, "judy")
    with factory() as session:
        others = [(i, cid) for i, cid in adjudications(session) if cid != shared]
    for item_id, cid in others:
        settled = judy_http.submit(f"/adjudicate/{item_id}", _truthful_form(truth[cid]))
        assert settled.status_code == 303

    # -- the adjudicator decides ---------------------------------------------------------------
    judy_context = browser.new_context()
    judy = judy_context.new_page()
    _sign_in(judy, base_url, "judy")
    judy.click("text=Adjudication")
    judy.wait_for_url("**/adjudicate")
    with factory() as session:
        (item_id,) = [i for i, cid in adjudications(session) if cid == shared]
    judy.click(f"#item-{item_id}")
    judy.wait_for_selector("text=coders disagree")
    _assert_blind(judy)
    judy.screenshot(path=str(shots / "adjudicate.png"))
    assert "A: risk imminent" in judy.content() or "B: risk imminent" in judy.content()
    for key in ("1", "m", "n", "a"):
        judy.keyboard.press(key)
    judy.keyboard.press("Control+Enter")
    judy.wait_for_url("**/adjudicate")
    judy.wait_for_selector("#none-open")
    with factory() as session:
        final = [r for r in label_rows(session) if r["conversation_id"] == shared]
    assert [(r["reviewer"], r["kind"], r["level_suicide"]) for r in final] == [
        ("judy", "adjudication", "moderate")
    ]

    # -- the admin sees agreement and downloads the labels -------------------------------------
    boss_context = browser.new_context(accept_downloads=True)
    boss = boss_context.new_page()
    _sign_in(boss, base_url, "boss")
    boss.click("text=Admin")
    boss.wait_for_url("**/admin")
    table = boss.inner_text("#agreement")
    assert "suicide" in table and "undefined" not in table.split("suicide")[1].split("\n")[0]
    boss.screenshot(path=str(shots / "admin.png"), full_page=True)
    with boss.expect_download() as download:
        boss.click("#export-csv")
    saved = shots / "labels.csv"
    download.value.save_as(saved)
    with factory() as session:
        rows = label_rows(session)
    assert len(saved.read_text().splitlines()) == len(rows) + 1
    assert not errors, errors
    for context in (ana_context, ben_context, judy_context, boss_context):
        context.close()


def _label_the_rest(visitor: Any, factory: Any, name: str, truth: dict[str, Any]) -> None:
    with factory() as session:
        todo = session.execute(
            select(Conversation.conversation_id, Assignment.position)
            .join(Assignment, Assignment.conversation_pk == Conversation.id)
            .join(User, User.id == Assignment.reviewer_id)
            .where(User.username == name, Assignment.completed_at.is_(None))
        ).all()
    for cid, position in todo:
        response = visitor.submit(f"/review/{position}", _truthful_form(truth[cid]))
        assert response.status_code == 303, response.text[:500]


def _truthful_form(record: dict[str, Any]) -> dict[str, str]:
    """The label form a clinician who knew the synthetic ground truth would submit."""
    form = label_form()
    for category, risky in record["risk"].items():
        if risky:
            delivered = record.get("intervention", {}).get(category) == "timely"
            form[f"level_{category}"] = "moderate"
            form[f"intervened_{category}"] = "yes" if delivered else "no"
            if delivered:
                form[f"appropriate_{category}"] = "yes"
    return form
