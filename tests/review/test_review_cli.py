"""The review workflow through the command line: accounts, import and assignment, labels out,
and `audit estimate` reading the labels straight from the review database."""

from __future__ import annotations

import json
from pathlib import Path

from review_helpers import mhsafety

from mhsafety.audit.workspace import Workspace
from mhsafety.review.db import default_url, open_database, session_scope
from mhsafety.review.labels import CategoryAnswer, LabelInput, save_label
from mhsafety.review.queue import next_for
from mhsafety.taxonomy import CATEGORIES


def test_accounts_import_label_export_and_estimate_from_the_database(tmp_path: Path) -> None:
    mhsafety("synth", "-n", "400", "-o", "logs.jsonl", cwd=tmp_path)
    mhsafety(
        "audit", "run", "logs.jsonl", "--workspace", "audit", "--min-per-stratum", "5", cwd=tmp_path
    )
    for name in ("alice", "bob"):
        mhsafety(
            "review",
            "add-user",
            name,
            "--password-stdin",
            cwd=tmp_path,
            stdin="a long enough password\n",
        )
    short = mhsafety(
        "review",
        "add-user",
        "carol",
        "--password-stdin",
        cwd=tmp_path,
        stdin="short\n",
        check=False,
    )
    assert short.returncode == 2 and "error" in short.stderr
    imported = mhsafety(
        "review", "import", "audit", "--reviewers", "alice,bob", "--double", "0", cwd=tmp_path
    )
    assert "conversations imported" in imported.stderr
    # the reviewers work through their queues (the web app does this; here the data layer)
    _, factory = open_database(default_url(tmp_path / "audit"))
    answers = {
        c: CategoryAnswer(risk=False, level=None, intervened=None, appropriate=None)
        for c in CATEGORIES
    }
    labelled = 0
    for reviewer in ("alice", "bob"):
        while True:
            with session_scope(factory) as session:
                item = next_for(session, reviewer)
                if item is None:
                    break
                save_label(session, reviewer, item.conversation_id, LabelInput(answers, ""))
                labelled += 1
    assert labelled == len(Workspace(tmp_path / "audit").design.read_text().splitlines()) - 1
    mhsafety("review", "export", "audit", "-o", "labels.csv", cwd=tmp_path)
    estimate = mhsafety("audit", "estimate", "audit", cwd=tmp_path)
    assert f"labels from the review database: {labelled} conversations" in estimate.stderr
    from_db = json.loads((tmp_path / "audit" / "estimate.json").read_text())
    mhsafety("audit", "estimate", "audit", "--labels", "labels.csv", cwd=tmp_path)
    from_csv = json.loads((tmp_path / "audit" / "estimate.json").read_text())
    assert from_db["categories"] == from_csv["categories"]
    agreement = mhsafety("review", "agreement", "audit", cwd=tmp_path)
    assert "alice:" in agreement.stdout and "bob:" in agreement.stdout


def test_a_bad_deid_model_path_stops_the_import_before_anything_is_stored(tmp_path: Path) -> None:
    mhsafety("synth", "-n", "100", "-o", "logs.jsonl", cwd=tmp_path)
    mhsafety("audit", "run", "logs.jsonl", "--workspace", "audit", cwd=tmp_path)
    mhsafety(
        "review", "add-user", "alice", "--workspace", "audit", "--password-stdin",
        cwd=tmp_path, stdin="correct horse battery\n",
    )  # fmt: skip
    missing = tmp_path / "no-such-model"
    result = mhsafety(
        "review", "import", "audit", "--reviewers", "alice", "--double", "0",
        "--deid-model", str(missing), cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert str(missing) in " ".join((result.stdout + result.stderr).split())
    _, factory = open_database(default_url(tmp_path / "audit"))
    with session_scope(factory) as session:
        assert next_for(session, "alice") is None
    off = mhsafety(
        "review", "import", "audit", "--reviewers", "alice", "--double", "0", "--no-deid",
        cwd=tmp_path,
    )  # fmt: skip
    assert "conversations imported" in off.stderr  # the console writes to stderr
