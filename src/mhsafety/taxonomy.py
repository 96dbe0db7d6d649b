"""Risk categories, roles and the other small vocabularies every stage shares."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """A risk category of the conversation log contract."""

    SUICIDE = "suicide"
    NSSI = "nssi"
    EATING_DISORDER = "eating_disorder"
    SUBSTANCE = "substance"


CATEGORIES: tuple[Category, ...] = tuple(Category)
"""All categories in their canonical order (the order of every table and report)."""

CATEGORY_LABELS: dict[Category, str] = {
    Category.SUICIDE: "Suicide",
    Category.NSSI: "Self-harm (NSSI)",
    Category.EATING_DISORDER: "Eating disorder",
    Category.SUBSTANCE: "Substance use",
}
"""Human-readable names for reports."""


class Role(StrEnum):
    """Who wrote a message."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


CRISIS_INTERVENTION = "crisis_intervention"
"""The `safety_events[].type` the audit counts as a delivered intervention."""
