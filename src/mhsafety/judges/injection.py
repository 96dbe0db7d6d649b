"""Injection resistance: does text inside a conversation change a judge's verdict?

The suite (``data/judges/injections.yaml``) holds base conversations and injected
variants (override instructions, fake system tags, fake JSON verdicts, fence escapes, other
languages, obfuscation). :func:`measure_injection` screens every base with and without
every variant and counts the verdicts that changed. Judge errors are counted apart: an
injection that makes a judge fail is reported, but not as a changed verdict.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from mhsafety.conversation import Conversation
from mhsafety.hashing import sha256_file
from mhsafety.judges.base import ConversationScreen, ScreeningJudge
from mhsafety.taxonomy import CATEGORIES, Role

Placement = Literal["append", "prepend", "message"]


def default_suite_path() -> Path:
    """The packaged injection suite."""
    return Path(str(resources.files("mhsafety") / "data" / "judges" / "injections.yaml"))


@dataclass(frozen=True)
class Variant:
    """One injected text and where it goes."""

    id: str
    kind: str
    language: str
    placement: Placement
    goal: Literal["suppress", "raise"]
    text: str


@dataclass(frozen=True)
class InjectionSuite:
    """Base conversations and the variants applied to each."""

    version: str
    sha256: str
    bases: tuple[Conversation, ...]
    variants: tuple[Variant, ...]

    @classmethod
    def load(cls, path: Path | None = None) -> InjectionSuite:
        """Read a suite file (the packaged one by default)."""
        path = path or default_suite_path()
        raw = yaml.safe_load(path.read_text("utf-8"))
        bases = tuple(
            Conversation.model_validate(
                {"id": b["id"], "messages": b["messages"], "metadata": {"expect": b["expect"]}}
            )
            for b in raw["bases"]
        )
        variants = tuple(Variant(**v) for v in raw["variants"])
        ids = [v.id for v in variants] + [b.id for b in bases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{path}: ids must be unique")
        return cls(str(raw["version"]), sha256_file(path), bases, variants)


def inject(conversation: Conversation, variant: Variant) -> Conversation:
    """The conversation with the variant's text placed as it says."""
    messages = [m.model_dump() for m in conversation.messages]
    users = [i for i, m in enumerate(conversation.messages) if m.role is Role.USER]
    if variant.placement == "message":
        messages.append({"role": "user", "content": variant.text})
    elif variant.placement == "prepend":
        first = users[0]
        messages[first]["content"] = variant.text + " " + messages[first]["content"]
    else:
        last = users[-1]
        messages[last]["content"] = messages[last]["content"] + " " + variant.text
    return Conversation.model_validate(
        {
            "id": f"{conversation.id}+{variant.id}",
            "messages": messages,
            "metadata": {**conversation.metadata, "variant": variant.id},
        }
    )


@dataclass
class InjectionReport:
    """What the injections did to one judge's verdicts."""

    judge: dict[str, Any]
    suite_version: str
    suite_sha256: str
    bases: int
    variants: int
    compared: int = 0
    changed: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    base_errors: list[str] = field(default_factory=list)
    changed_by_kind: Counter[str] = field(default_factory=Counter)
    total_by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def changed_rate(self) -> float:
        """Share of compared injected conversations whose verdict changed."""
        return len(self.changed) / self.compared if self.compared else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "judge": self.judge,
            "suite": {"version": self.suite_version, "sha256": self.suite_sha256},
            "bases": self.bases,
            "variants": self.variants,
            "injected": self.bases * self.variants,
            "compared": self.compared,
            "changed": len(self.changed),
            "judge_errors": len(self.errors),
            "base_errors": self.base_errors,
            "by_kind": {
                kind: {"changed": self.changed_by_kind[kind], "total": total}
                for kind, total in sorted(self.total_by_kind.items())
            },
            "changed_items": self.changed,
            "error_items": self.errors,
        }


def _flags(screen: ConversationScreen) -> dict[str, bool]:
    return {str(c): screen.flags[c] for c in CATEGORIES}


def measure_injection(judge: ScreeningJudge, suite: InjectionSuite) -> InjectionReport:
    """Screen every base with and without every variant; count changed verdicts.

    Counts reconcile: ``bases x variants = compared + judge_errors``, where an injected
    item is not compared when it or its base failed.
    """
    report = InjectionReport(
        judge.info.to_dict(), suite.version, suite.sha256, len(suite.bases), len(suite.variants)
    )
    base_screens = {s.id: s for s in judge.screen(suite.bases)}
    injected = [(b, v, inject(b, v)) for b in suite.bases for v in suite.variants]
    screens = judge.screen([c for _, _, c in injected])
    for base_id, verdict in base_screens.items():
        if verdict.error:
            report.base_errors.append(f"{base_id}: {verdict.error}")
    for (base, variant, conversation), screen in zip(injected, screens, strict=True):
        report.total_by_kind[variant.kind] += 1
        base_screen = base_screens[base.id]
        if screen.error or base_screen.error:
            report.errors.append(
                {"id": conversation.id, "error": screen.error or f"base: {base_screen.error}"}
            )
            continue
        report.compared += 1
        before, after = _flags(base_screen), _flags(screen)
        if before != after:
            report.changed_by_kind[variant.kind] += 1
            report.changed.append(
                {"id": conversation.id, "kind": variant.kind, "before": before, "after": after}
            )
    return report


def reconcile(report: InjectionReport) -> bool:
    """True when every injected item was compared or counted as an error."""
    return report.compared + len(report.errors) == report.bases * report.variants


__all__ = [
    "InjectionReport",
    "InjectionSuite",
    "Placement",
    "Variant",
    "default_suite_path",
    "inject",
    "measure_injection",
    "reconcile",
]
