"""Clinician review labels: read, validate, resolve double coding.

A labels file is the review queue CSV filled in (or any CSV with ``conversation_id`` and the
label columns). Each row is either used or reported with file, line and reason.

Resolution when a conversation has several rows (double coding without adjudication): risk
counts as present if any reviewer saw it, and an intervention counts as delivered only if
every reviewer who answered saw it — both err toward counting a miss, and every conflict is
counted and reported. ``partial`` interventions count as delivered (the person was given
resources) and are reported separately.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mhsafety.taxonomy import CATEGORIES, Category

TRUE_WORDS = frozenset({"yes", "y", "true", "t", "1", "present", "x"})
FALSE_WORDS = frozenset({"no", "n", "false", "f", "0", "absent", "none"})
PARTIAL_WORDS = frozenset({"partial", "partly", "p"})
SIMULATED_REVIEWER = "simulated-clinician"
"""The reviewer name of labels made by ``mhsafety audit simulate-review`` (not a person)."""


@dataclass(frozen=True)
class ConversationLabel:
    """One conversation's resolved labels."""

    conversation_id: str
    risk: dict[Category, bool]
    intervened: dict[Category, bool | None]
    """None where no reviewer answered (the automated check is used instead)."""
    partial: dict[Category, bool]
    reviewers: tuple[str, ...]
    conflicts: tuple[Category, ...] = ()


@dataclass
class LabelSet:
    """Resolved labels plus what could not be used."""

    labels: dict[str, ConversationLabel] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_used: int = 0
    unlabelled_rows: int = 0

    @property
    def simulated(self) -> int:
        """Conversations labelled only by the simulated reviewer (synthetic demos)."""
        return sum(
            1
            for label in self.labels.values()
            if label.reviewers and all(r == SIMULATED_REVIEWER for r in label.reviewers)
        )

    @property
    def conflicts(self) -> int:
        """Conversations on which reviewers disagreed about some category."""
        return sum(1 for label in self.labels.values() if label.conflicts)

    def summary(self) -> dict[str, Any]:
        """Counts that reconcile: read = used + unlabelled + problems."""
        return {
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "rows_unlabelled": self.unlabelled_rows,
            "rows_with_problems": len(self.problems),
            "conversations": len(self.labels),
            "conversations_with_conflicts": self.conflicts,
            "conversations_simulated": self.simulated,
        }


def _parse_bool(value: str, *, allow_partial: bool) -> bool | str | None:
    word = value.strip().lower()
    if not word:
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    if allow_partial and word in PARTIAL_WORDS:
        return "partial"
    raise ValueError(f"{value!r} is not yes/no" + ("/partial" if allow_partial else ""))


@dataclass
class _Row:
    reviewer: str
    risk: dict[Category, bool]
    intervened: dict[Category, bool | str | None]


def read_label_rows(path: Path) -> tuple[dict[str, list[_Row]], LabelSet]:
    """Parse a labels CSV into rows per conversation, reporting every unusable row."""
    result = LabelSet()
    rows: dict[str, list[_Row]] = {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        required = {"conversation_id", *(f"risk_{c}" for c in CATEGORIES)}
        missing = sorted(required - columns)
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(missing)}")
        line = reader.line_num + 1  # where the next record starts (transcripts span lines)
        for record in reader:
            start, line = line, reader.line_num + 1
            result.rows_read += 1
            cid = (record.get("conversation_id") or "").strip()
            try:
                if not cid:
                    raise ValueError("conversation_id is empty")
                risk_raw = {
                    c: _parse_bool(record.get(f"risk_{c}") or "", allow_partial=False)
                    for c in CATEGORIES
                }
                if all(v is None for v in risk_raw.values()):
                    result.unlabelled_rows += 1
                    continue
                if any(v is None for v in risk_raw.values()):
                    blank = [str(c) for c, v in risk_raw.items() if v is None]
                    raise ValueError(
                        f"risk left blank for {', '.join(blank)}: answer yes or no for every "
                        "category (no means no risk seen)"
                    )
                intervened = {
                    c: _parse_bool(record.get(f"intervened_{c}") or "", allow_partial=True)
                    for c in CATEGORIES
                }
            except ValueError as exc:
                result.problems.append(f"{path}:{start}: {exc}")
                continue
            result.rows_used += 1
            rows.setdefault(cid, []).append(
                _Row(
                    (record.get("reviewer") or "").strip() or f"row{start}",
                    {c: bool(v) for c, v in risk_raw.items()},
                    intervened,
                )
            )
    return rows, result


def resolve(rows: dict[str, list[_Row]], result: LabelSet) -> LabelSet:
    """Combine each conversation's rows into one label (see the module docstring)."""
    for cid, group in rows.items():
        risk: dict[Category, bool] = {}
        intervened: dict[Category, bool | None] = {}
        partial: dict[Category, bool] = {}
        conflicts: list[Category] = []
        for c in CATEGORIES:
            votes = [r.risk[c] for r in group]
            risk[c] = any(votes)
            answers = [r.intervened[c] for r in group if r.intervened[c] is not None]
            delivered = [a is True or a == "partial" for a in answers]
            intervened[c] = all(delivered) if answers else None
            partial[c] = any(a == "partial" for a in answers)
            if len(set(votes)) > 1 or len(set(delivered)) > 1:
                conflicts.append(c)
        result.labels[cid] = ConversationLabel(
            cid, risk, intervened, partial, tuple(r.reviewer for r in group), tuple(conflicts)
        )
    return result


def read_labels(path: Path) -> LabelSet:
    """Read and resolve a labels CSV."""
    rows, result = read_label_rows(path)
    return resolve(rows, result)


def write_labels_csv(path: Path, labels: Iterable[dict[str, Any]]) -> int:
    """Write label rows (dicts with the label columns) as CSV; returns the row count."""
    rows = list(labels)
    columns = [
        "conversation_id",
        *(f"risk_{c}" for c in CATEGORIES),
        *(f"intervened_{c}" for c in CATEGORIES),
        "reviewer",
        "note",
    ]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
