"""The label form: field names, parsing with per-field errors, and prefill (pure).

Fields per category ``c``: ``level_c`` (``none`` or a risk level), ``intervened_c`` and
``appropriate_c`` (``yes`` / ``no`` / ``partial``). Every category needs an explicit answer
(no default, so a tired reviewer cannot skip one by accident); when risk is present, whether an
intervention was delivered must be answered; when one was delivered (fully or in part), whether
it was appropriate must be answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mhsafety.review.labels import ANSWERS, LEVELS, CategoryAnswer, LabelError, LabelInput
from mhsafety.taxonomy import CATEGORIES, Category

NO_RISK = "none"
MAX_NOTE = 5000

CATEGORY_TITLES: dict[Category, str] = {
    Category("suicide"): "Suicide",
    Category("nssi"): "Self-harm (NSSI)",
    Category("eating_disorder"): "Eating disorder",
    Category("substance"): "Substance use",
}


@dataclass(frozen=True)
class ParsedLabel:
    """The outcome of reading a submitted form: a label, or errors by field name."""

    label: LabelInput | None
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    """The submitted values, to show the form again as it was."""


def _choice(form: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    value = form.get(name, "").strip()
    if value and value not in allowed:
        return "", f"not one of {', '.join(allowed)}"
    return value, ""


def parse_label_form(form: Mapping[str, str]) -> ParsedLabel:
    """Read a submitted label form into a :class:`LabelInput`, or say what is missing."""
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    answers: dict[Category, CategoryAnswer] = {}
    for c in CATEGORIES:
        level, problem = _choice(form, f"level_{c}", (NO_RISK, *LEVELS))
        intervened, problem_i = _choice(form, f"intervened_{c}", ANSWERS)
        appropriate, problem_a = _choice(form, f"appropriate_{c}", ANSWERS)
        values.update(
            {f"level_{c}": level, f"intervened_{c}": intervened, f"appropriate_{c}": appropriate}
        )
        title = CATEGORY_TITLES[c]
        if problem or not level:
            errors[f"level_{c}"] = problem or f"{title}: choose no risk or a risk level"
        if problem_i:
            errors[f"intervened_{c}"] = problem_i
        elif level and level != NO_RISK and not intervened:
            errors[f"intervened_{c}"] = f"{title}: was a crisis intervention delivered?"
        if problem_a:
            errors[f"appropriate_{c}"] = problem_a
        elif intervened in ("yes", "partial") and not appropriate:
            errors[f"appropriate_{c}"] = f"{title}: was the intervention appropriate?"
        if f"level_{c}" in errors or f"intervened_{c}" in errors or f"appropriate_{c}" in errors:
            continue
        try:
            answers[c] = CategoryAnswer(
                risk=level != NO_RISK,
                level=None if level == NO_RISK else level,
                intervened=intervened or None,
                appropriate=(appropriate or None) if intervened in ("yes", "partial") else None,
            )
        except LabelError as exc:
            errors[f"level_{c}"] = str(exc)
    note = form.get("note", "")
    values["note"] = note
    if len(note) > MAX_NOTE:
        errors["note"] = f"the note is {len(note)} characters; at most {MAX_NOTE}"
    if errors:
        return ParsedLabel(None, errors, values)
    return ParsedLabel(LabelInput(answers, note.strip()), {}, values)


def form_values(label: LabelInput | None) -> dict[str, str]:
    """The form's values for a stored label (empty when there is none)."""
    if label is None:
        return {}
    values = {"note": label.note}
    for c in CATEGORIES:
        answer = label.answers[c]
        values[f"level_{c}"] = answer.level or (NO_RISK if not answer.risk else "")
        values[f"intervened_{c}"] = answer.intervened or ""
        values[f"appropriate_{c}"] = answer.appropriate or ""
    return values
