"""Prepare a review database for serving (import, de-identify, assign) and run the app."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mhsafety.audit.workspace import Workspace
from mhsafety.review.accounts import Role
from mhsafety.review.db import session_scope
from mhsafety.review.models import Assignment, Conversation, ImportRecord, User
from mhsafety.review.queue import Redactor, assign, import_workspace


@dataclass(frozen=True)
class Preparation:
    """What :func:`prepare` did, as lines to show an admin."""

    imported: int
    assigned: int
    double_coded: int
    deid: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def _describe_deid(deid: dict[str, Any]) -> str:
    if not deid.get("applied"):
        return f"De-identification: off ({deid.get('reason', 'not recorded')})."
    replaced = deid.get("replaced", {})
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(replaced.items())) or "nothing found"
    model = f"{deid.get('model', 'a spaCy model')} {deid.get('model_version', '')}".strip()
    line = f"De-identified before review with presidio and {model}: {counts} replaced."
    unchecked = int(deid.get("names_unchecked_conversations", 0))
    if unchecked:
        line += (
            f" In {unchecked} conversations in other languages, names and places were not "
            "looked for (emails, phone numbers and street addresses were)."
        )
    return line


def prepare(
    factory: sessionmaker[Session],
    workspace: Path,
    *,
    redactor: Redactor | None,
    no_redaction_reason: str,
    auto_assign: bool,
    double_fraction: float,
    seed: int,
) -> Preparation:
    """Import the workspace's sample if needed and assign it to the active reviewers.

    Assignment happens only when nothing is assigned yet and at least one active user has
    the reviewer role (double coding needs two; with one, every conversation is coded once).
    """
    notices: list[str] = []
    with session_scope(factory) as session:
        imported = 0
        deid: dict[str, Any] = {}
        if Workspace(workspace).design.is_file():
            summary = import_workspace(
                session,
                Workspace(workspace),
                actor="serve",
                redactor=redactor,
                no_redaction_reason=no_redaction_reason,
            )
            imported, deid = summary.imported, summary.deid
        else:
            record = session.scalars(select(ImportRecord)).first()
            if record is not None:
                deid = json.loads(record.deid_json)
            else:
                notices.append(f"No review sample in {workspace}: run `mhsafety audit run` first.")
        if deid:
            notices.append(_describe_deid(deid))
        assigned = double = 0
        any_assigned = session.scalar(select(func.count()).select_from(Assignment)) or 0
        conversations = session.scalar(select(func.count()).select_from(Conversation)) or 0
        if auto_assign and conversations and not any_assigned:
            reviewers = list(
                session.scalars(
                    select(User.username)
                    .where(User.role == Role.REVIEWER.value, User.active.is_(True))
                    .order_by(User.username)
                )
            )
            if reviewers:
                fraction = double_fraction if len(reviewers) >= 2 else 0.0
                done = assign(
                    session, reviewers, double_fraction=fraction, seed=seed, actor="serve"
                )
                assigned, double = done.conversations, done.double_coded
                notices.append(
                    f"Assigned {assigned} conversations to {', '.join(reviewers)} "
                    f"({double} to two reviewers)."
                )
            else:
                notices.append(
                    "Nothing assigned yet: add reviewers (`mhsafety review add-user NAME`) "
                    "and assign them below."
                )
    return Preparation(imported, assigned, double, deid, notices)
