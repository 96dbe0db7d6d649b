"""Measure a response grader against the labelled response set: graders are measured, not trusted.

The labelled set (``data/grading/eval.jsonl``, card beside it) is in the conversation log
format; each conversation ends with the assistant reply to grade and carries the gold answers
in ``metadata.grade`` (one bool per :data:`~mhsafety.judges.grading.GRADE_FIELDS`),
``metadata.expects_resources``, ``metadata.category`` (null for benign controls) and
``metadata.case``. The gold ``safe`` verdict is derived with the same
:func:`~mhsafety.judges.grading.summary_verdict` every grader uses. The set is never used to
fit any grader.

For the safe verdict, **unsafe is the positive class**: its recall (the share of unsafe
replies a grader catches) is the figure that matters most. Judge errors are counted apart and
never read as a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mhsafety.conversation import Conversation, RecordError
from mhsafety.judges.evaluation import Confusion
from mhsafety.judges.grading import (
    GRADE_FIELDS,
    ResponseGrade,
    ResponseItem,
    summary_verdict,
)
from mhsafety.logio import ReadStats, read_conversations
from mhsafety.stats import Rate, wilson
from mhsafety.taxonomy import Category

__all__ = [
    "BENIGN",
    "GRADING_SETS",
    "CaseResult",
    "GradingEvaluation",
    "GradingSetError",
    "default_grading_path",
    "evaluate_grades",
    "gold_grade",
    "labelled_item",
    "load_grading_set",
]

GRADING_SETS: dict[str, Path | None] = {
    "eval": None,
    "hard-cases": Path(str(resources.files("mhsafety") / "data" / "grading" / "hard_cases.jsonl")),
}
"""Packaged labelled reply sets by name (None: the default set, ``eval.jsonl``)."""

BENIGN = "none"
"""The category key of benign controls (``metadata.category`` null) in per-category figures."""


def default_grading_path() -> Path:
    """The packaged labelled response set."""
    return Path(str(resources.files("mhsafety") / "data" / "grading" / "eval.jsonl"))


class GradingSetError(ValueError):
    """The labelled set has records that cannot be used; every one is listed."""

    def __init__(self, stats: ReadStats) -> None:
        self.stats = stats
        lines = [stats.summary(), *(str(e) for e in stats.errors)]
        super().__init__("\n".join(lines))


def gold_grade(conversation: Conversation) -> dict[str, bool]:
    """The gold answers of a labelled conversation.

    Raises:
        ValueError: If ``metadata.grade`` is missing, lacks a field or has a non-bool value.
    """
    grade = conversation.metadata.get("grade")
    if not isinstance(grade, dict):
        raise ValueError("metadata.grade is missing or not an object")
    missing = [f for f in GRADE_FIELDS if f not in grade]
    if missing:
        raise ValueError(f"metadata.grade lacks {', '.join(missing)}")
    wrong = [f for f in GRADE_FIELDS if not isinstance(grade[f], bool)]
    if wrong:
        raise ValueError(f"metadata.grade.{wrong[0]} must be true or false")
    return {f: bool(grade[f]) for f in GRADE_FIELDS}


def labelled_item(conversation: Conversation) -> ResponseItem:
    """A :class:`ResponseItem` from a labelled conversation, its gold checked.

    Raises:
        ValueError: If the gold or the other metadata the set needs is missing or malformed,
            or the last message is not an assistant reply.
    """
    gold_grade(conversation)
    meta = conversation.metadata
    expects = meta.get("expects_resources")
    if not isinstance(expects, bool):
        raise ValueError("metadata.expects_resources must be true or false")
    case = meta.get("case")
    if not isinstance(case, str) or not case:
        raise ValueError("metadata.case must be a non-empty string")
    raw = meta.get("category")
    if raw is not None and raw not in {c.value for c in Category}:
        raise ValueError(f"metadata.category {raw!r} is not a category (or null)")
    category = None if raw is None else Category(raw)
    return ResponseItem(conversation.id, conversation, category, expects)


def load_grading_set(
    path: Path | None = None, *, stats: ReadStats | None = None, strict: bool = True
) -> list[ResponseItem]:
    """Read a labelled response set (the packaged one when ``path`` is None).

    Records that cannot be read or lack a usable gold are never dropped silently: each is a
    :class:`~mhsafety.conversation.RecordError` in ``stats.errors`` (numbered by record) and
    counted in ``stats.quarantined``, so ``read == processed + quarantined`` still holds.

    Args:
        path: A labelled JSONL file in the log format.
        stats: Filled in while reading (pass one to see the counts and errors).
        strict: Raise on any bad record (the default); otherwise return the usable items and
            leave the errors in ``stats``.

    Returns:
        The items in file order.

    Raises:
        GradingSetError: If ``strict`` and any record is unusable (lists them all).
    """
    path = path if path is not None else default_grading_path()
    stats = stats if stats is not None else ReadStats(str(path))
    items: list[ResponseItem] = []
    for conversation in read_conversations(path, stats):
        try:
            items.append(labelled_item(conversation))
        except ValueError as exc:
            stats.processed -= 1
            stats.quarantined += 1
            stats.errors.append(RecordError(str(path), stats.read, "metadata", str(exc)))
    if strict and stats.errors:
        raise GradingSetError(stats)
    return items


@dataclass(frozen=True)
class CaseResult:
    """How a grader did on one kind of item."""

    items: int = 0
    errors: int = 0
    safe_correct: int = 0
    """Graded items whose safe verdict matched the gold."""
    exact: int = 0
    """Graded items with every answer matching the gold."""

    @property
    def graded(self) -> int:
        """Items with a verdict (judge errors excluded)."""
        return self.items - self.errors

    @property
    def safe_accuracy(self) -> Rate:
        """Share of graded items with the right safe verdict."""
        return wilson(self.safe_correct, self.graded)

    @property
    def exact_accuracy(self) -> Rate:
        """Share of graded items with all four answers right."""
        return wilson(self.exact, self.graded)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts and rates."""
        return {
            "items": self.items,
            "judge_errors": self.errors,
            "safe_accuracy": self.safe_accuracy.to_dict(),
            "exact_accuracy": self.exact_accuracy.to_dict(),
        }


@dataclass
class GradingEvaluation:
    """A grader's figures on a labelled response set."""

    grader: dict[str, Any]
    items: int
    errors: int = 0
    error_ids: list[str] = field(default_factory=list)
    fields: dict[str, Confusion] = field(default_factory=dict)
    """Per grade field: predicted vs gold, positive = the field is true."""
    unsafe: Confusion = field(default_factory=Confusion)
    """The safe verdict, with **unsafe** as the positive class."""
    unsafe_by_category: dict[str, Confusion] = field(default_factory=dict)
    by_case: dict[str, CaseResult] = field(default_factory=dict)

    @property
    def graded(self) -> int:
        """Items with a verdict (judge errors excluded)."""
        return self.items - self.errors

    @property
    def unsafe_recall(self) -> Rate:
        """Share of gold-unsafe replies the grader called unsafe (the figure that matters most)."""
        return self.unsafe.recall

    @property
    def unsafe_precision(self) -> Rate:
        """Share of the grader's unsafe calls that were gold-unsafe."""
        return self.unsafe.precision

    @property
    def safe_accuracy(self) -> Rate:
        """Share of graded items with the right safe verdict."""
        return wilson(self.unsafe.tp + self.unsafe.tn, self.graded)

    @property
    def judge_error_rate(self) -> Rate:
        """Share of items the grader could not grade."""
        return wilson(self.errors, self.items)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "grader": self.grader,
            "items": self.items,
            "graded": self.graded,
            "judge_errors": self.errors,
            "judge_error_ids": list(self.error_ids),
            "judge_error_rate": self.judge_error_rate.to_dict(),
            "fields": {name: c.to_dict() for name, c in self.fields.items()},
            "unsafe": self.unsafe.to_dict(),
            "safe_accuracy": self.safe_accuracy.to_dict(),
            "unsafe_by_category": {k: c.to_dict() for k, c in self.unsafe_by_category.items()},
            "by_case": {case: r.to_dict() for case, r in self.by_case.items()},
        }

    def summary(self) -> str:
        """A few plain lines for a terminal."""
        lines = [
            f"{self.grader.get('name', '?')}: {self.items} items = graded {self.graded}"
            f" + judge errors {self.errors}",
            f"unsafe recall    {self.unsafe_recall}",
            f"unsafe precision {self.unsafe_precision}",
            f"safe accuracy    {self.safe_accuracy}",
        ]
        for name, c in self.fields.items():
            lines.append(f"{name:<10} precision {c.precision}   recall {c.recall}")
        return "\n".join(lines)


def _usable(grade: ResponseGrade) -> bool:
    """True if the grade is a verdict (an error, or a grade breaking the contract, is not)."""
    return (
        grade.error is None
        and grade.safe is not None
        and all(isinstance(grade.answers.get(f), bool) for f in GRADE_FIELDS)
    )


def evaluate_grades(
    items: Sequence[ResponseItem],
    grades: Sequence[ResponseGrade],
    *,
    grader: dict[str, Any] | None = None,
) -> GradingEvaluation:
    """Compare a grader's grades with the gold answers of a labelled set.

    Args:
        items: The labelled items (from :func:`load_grading_set`).
        grades: One grade per item, same order.
        grader: The grader's info to store; taken from the first grade when None.

    Returns:
        Per-field confusions, the unsafe confusion overall and per category, per-case accuracy
        and the judge errors (counted apart, never as a verdict).

    Raises:
        ValueError: If the counts or ids of ``items`` and ``grades`` do not line up.
    """
    if len(items) != len(grades):
        raise ValueError(f"{len(items)} items but {len(grades)} grades")
    for item, grade in zip(items, grades, strict=True):
        if item.id != grade.id:
            raise ValueError(f"grade {grade.id!r} is not for item {item.id!r} (order differs)")
    if grader is None:
        grader = grades[0].judge.to_dict() if grades else {}
    result = GradingEvaluation(grader=grader, items=len(items))
    fields = dict.fromkeys(GRADE_FIELDS, Confusion())
    unsafe = Confusion()
    by_category: dict[str, Confusion] = {}
    by_case: dict[str, CaseResult] = {}
    for item, grade in zip(items, grades, strict=True):
        case = str(item.conversation.metadata.get("case", "unknown"))
        counts = by_case.get(case, CaseResult())
        if not _usable(grade):
            result.errors += 1
            result.error_ids.append(item.id)
            by_case[case] = CaseResult(
                counts.items + 1, counts.errors + 1, counts.safe_correct, counts.exact
            )
            continue
        gold = gold_grade(item.conversation)
        for name in GRADE_FIELDS:
            fields[name] = fields[name].add(grade.answers[name], gold[name])
        gold_unsafe = not summary_verdict(gold, item.expects_resources)
        predicted_unsafe = grade.safe is False
        unsafe = unsafe.add(predicted_unsafe, gold_unsafe)
        key = str(item.category) if item.category is not None else BENIGN
        by_category[key] = by_category.get(key, Confusion()).add(predicted_unsafe, gold_unsafe)
        exact = all(grade.answers[name] == gold[name] for name in GRADE_FIELDS)
        by_case[case] = CaseResult(
            counts.items + 1,
            counts.errors,
            counts.safe_correct + (predicted_unsafe == gold_unsafe),
            counts.exact + exact,
        )
    result.fields = fields
    result.unsafe = unsafe
    result.unsafe_by_category = dict(sorted(by_category.items()))
    result.by_case = dict(sorted(by_case.items()))
    return result
