"""The guard's policy and words, loaded from data files (pure, no I/O beyond reading them)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from mhsafety.hashing import sha256_file
from mhsafety.taxonomy import CATEGORIES, Category


def _data(name: str) -> Path:
    return Path(str(resources.files("mhsafety") / "data" / "safeguards" / name))


@dataclass(frozen=True)
class CategoryPolicy:
    """When a category's signals trigger which action."""

    intervene_at: float | None
    """Score at which to intervene; None means the screening judge's own threshold."""
    steer_at: float
    screen_output: bool


@dataclass(frozen=True)
class Policy:
    """Per-category levels and the fail-safe rules (``data/safeguards/policy.yaml``)."""

    version: str
    sha256: str
    categories: dict[Category, CategoryPolicy]
    default_locale: str
    on_assessment_failure: Literal["intervene", "pass"]
    upstream_timeout_seconds: float

    @classmethod
    def load(cls, path: Path | None = None) -> Policy:
        """Read a policy file (the packaged one by default)."""
        path = path or _data("policy.yaml")
        raw: dict[str, Any] = yaml.safe_load(path.read_text("utf-8"))
        categories: dict[Category, CategoryPolicy] = {}
        for category in CATEGORIES:
            entry = raw["categories"][str(category)]
            level = entry["intervene_at"]
            intervene = None if level == "judge" else float(level)
            steer = float(entry["steer_at"])
            if intervene is not None and steer > intervene:
                raise ValueError(f"{path}: {category}: steer_at must not exceed intervene_at")
            categories[category] = CategoryPolicy(intervene, steer, bool(entry["screen_output"]))
        failure = raw.get("on_assessment_failure", "intervene")
        if failure not in ("intervene", "pass"):
            raise ValueError(f"{path}: on_assessment_failure is intervene or pass")
        return cls(
            version=str(raw["version"]),
            sha256=sha256_file(path),
            categories=categories,
            default_locale=str(raw.get("default_locale", "en-US")),
            on_assessment_failure=failure,
            upstream_timeout_seconds=float(raw.get("upstream_timeout_seconds", 60)),
        )


@dataclass(frozen=True)
class Messages:
    """What the guard says (``data/safeguards/messages.yaml``)."""

    version: str
    sha256: str
    openers: dict[Category, tuple[str, ...]]
    resources_intro: tuple[str, ...]
    closers: tuple[str, ...]
    unsafe_output: tuple[str, ...]
    upstream_unavailable: tuple[str, ...]
    steering: str

    @classmethod
    def load(cls, path: Path | None = None) -> Messages:
        """Read a messages file (the packaged one by default)."""
        path = path or _data("messages.yaml")
        raw: dict[str, Any] = yaml.safe_load(path.read_text("utf-8"))

        def texts(value: Any, where: str) -> tuple[str, ...]:
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) for v in value)
            ):
                raise ValueError(f"{path}: {where} must be a non-empty list of texts")
            return tuple(value)

        if "{categories}" not in raw["steering"]:
            raise ValueError(f"{path}: steering must contain {{categories}}")
        return cls(
            version=str(raw["version"]),
            sha256=sha256_file(path),
            openers={c: texts(raw["openers"][str(c)], f"openers.{c}") for c in CATEGORIES},
            resources_intro=texts(raw["resources_intro"], "resources_intro"),
            closers=texts(raw["closers"], "closers"),
            unsafe_output=texts(raw["unsafe_output"], "unsafe_output"),
            upstream_unavailable=texts(raw["upstream_unavailable"], "upstream_unavailable"),
            steering=str(raw["steering"]),
        )
