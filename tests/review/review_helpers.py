"""Helpers of the review data layer tests (imported by name: tests have no packages)."""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from mhsafety.audit.workspace import Workspace
from mhsafety.review import accounts
from mhsafety.review.accounts import Role
from mhsafety.taxonomy import CATEGORIES
from mhsafety.testing.cli import run_mhsafety

PASSWORD = "correct horse battery"


def add_users(session: Session, reviewers: Sequence[str], adjudicators: Sequence[str] = ()) -> None:
    """Add reviewers, adjudicators and an ``admin``."""
    accounts.add_user(session, "admin", PASSWORD, Role.ADMIN, actor="setup")
    for name in reviewers:
        accounts.add_user(session, name, PASSWORD, Role.REVIEWER, actor="admin")
    for name in adjudicators:
        accounts.add_user(session, name, PASSWORD, Role.ADJUDICATOR, actor="admin")


@dataclass(frozen=True)
class Spec:
    """One conversation of a hand-built workspace."""

    id: str
    stratum: str
    flags: tuple[str, ...] = ()
    text: str = ""
    """The user's first message (default: ``message one of <id>``)."""


def build_workspace(root: Path, specs: Sequence[Spec]) -> Workspace:
    """The files of a small audit workspace, written directly (no screening)."""
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace(root)
    ws.config.write_text(json.dumps({"config_hash": "handmade0001"}), "utf-8")
    with (
        open(ws.screen, "w", encoding="utf-8") as screen,
        open(ws.queue_jsonl, "w", encoding="utf-8") as queue,
    ):
        for order, spec in enumerate(specs, start=1):
            flags = {str(c): str(c) in spec.flags for c in CATEGORIES}
            scores = {str(c): (0.9 if flags[str(c)] else 0.05) for c in CATEGORIES}
            screen.write(
                json.dumps({"id": spec.id, "flags": flags, "intervened": flags, "scores": scores})
                + "\n"
            )
            conversation = {
                "id": spec.id,
                "messages": [
                    {"role": "user", "content": spec.text or f"message one of {spec.id}"},
                    {
                        "role": "assistant",
                        "content": "I'm here with you.",
                        "safety_events": [{"type": "crisis_intervention", "category": "suicide"}],
                    },
                ],
                "metadata": {"locale": "en-US"},
            }
            queue.write(json.dumps({"review_order": order, "conversation": conversation}) + "\n")
    with open(ws.design, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "stratum", "inclusion_prob", "review_order"])
        for order, spec in enumerate(specs, start=1):
            writer.writerow(
                [spec.id, spec.stratum, 1.0 if spec.stratum == "flagged" else 0.1, order]
            )
    return ws


def mhsafety(
    *args: str, cwd: Path, stdin: str = "", check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real command line (fails the test on a non-zero exit unless ``check=False``)."""
    return run_mhsafety(*args, cwd=cwd, stdin=stdin, check=check)
