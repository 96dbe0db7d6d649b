"""Rubrics as versioned data, and how a conversation becomes a judge prompt.

A rubric file (``data/rubrics/<id>-v<major>.yaml``) holds the system and user templates, the
JSON schema the reply must match and, for screening, how levels map to scores and flags.
Its sha256 goes into every verdict and the verdict cache key.

Conversation text is data, never instructions. :func:`encode_messages` writes the messages
as a JSON array with every ``<`` and ``>`` escaped (``\\u003c``/``\\u003e``), so the text
cannot contain a tag or the ``<<<`` that starts a fence line, and :func:`fence_for` derives
a per-conversation marker that does not occur in the data. Templates are filled in one
pass, so text inside the data is never scanned for placeholders.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from mhsafety.hashing import sha256_file

Task = Literal["screen", "grade"]
DEFAULT_RUBRICS: dict[Task, str] = {"screen": "screen-v1", "grade": "grade-v1"}
_PLACEHOLDER = re.compile(r"\{(fence|data|reply_index)\}")
_REQUIRED = ("id", "version", "task", "system", "user", "output_schema")


class RubricError(ValueError):
    """A rubric file is missing, malformed or unusable."""


def rubrics_dir() -> Path:
    """The packaged rubric folder."""
    return Path(str(resources.files("mhsafety") / "data" / "rubrics"))


def available_rubrics() -> list[str]:
    """Names of the packaged rubrics (file stems)."""
    return sorted(p.stem for p in rubrics_dir().glob("*.yaml"))


@dataclass(frozen=True, eq=False)
class Rubric:
    """A judge rubric loaded from its data file."""

    id: str
    version: str
    task: Task
    description: str
    system: str
    user: str
    output_schema: dict[str, Any]
    sha256: str
    path: Path
    citations: tuple[str, ...] = ()
    levels: dict[str, float] = field(default_factory=dict)
    flag_at: str | None = None

    @property
    def key(self) -> str:
        """``id@version``, the name verdicts record."""
        return f"{self.id}@{self.version}"

    def flags(self, level: str) -> bool:
        """Whether a screening level reaches the flag level."""
        if self.flag_at is None:
            raise RubricError(f"rubric {self.key} has no flag_at")
        return self.levels[level] >= self.levels[self.flag_at]

    def render(self, data: str, **values: str) -> tuple[str, str]:
        """The system and user prompts for one item's encoded data.

        Args:
            data: The item as :func:`encode_messages` wrote it.
            **values: Other placeholders the templates use (``reply_index``).
        """
        filled = {"data": data, "fence": fence_for(data), **values}

        def value(match: re.Match[str]) -> str:
            if match[1] not in filled:
                raise RubricError(f"rubric {self.key} needs a value for {{{match[1]}}}")
            return filled[match[1]]

        def fill(template: str) -> str:
            return _PLACEHOLDER.sub(value, template)

        return fill(self.system), fill(self.user)

    @classmethod
    def load(cls, name_or_path: str | Path) -> Rubric:
        """Load a packaged rubric by name (``screen-v1``) or a rubric file by path."""
        path = Path(name_or_path)
        if not path.suffix:
            path = rubrics_dir() / f"{name_or_path}.yaml"
            if not path.is_file():
                known = ", ".join(available_rubrics())
                raise RubricError(f"unknown rubric {name_or_path!r}; packaged: {known}")
        if not path.is_file():
            raise RubricError(f"{path}: no such rubric file")
        try:
            raw = yaml.safe_load(path.read_text("utf-8"))
        except yaml.YAMLError as exc:
            raise RubricError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_dict(raw, path=path, sha256=sha256_file(path))

    @classmethod
    def from_dict(cls, raw: Any, *, path: Path, sha256: str) -> Rubric:
        """Build and check a rubric from its parsed file."""
        if not isinstance(raw, dict):
            raise RubricError(f"{path}: a rubric is a mapping")
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise RubricError(f"{path}: missing {', '.join(missing)}")
        task = raw["task"]
        if task not in DEFAULT_RUBRICS:
            raise RubricError(f"{path}: task must be screen or grade, not {task!r}")
        for template in ("system", "user"):
            if "{fence}" not in raw[template] and template == "user":
                raise RubricError(f"{path}: the user template must fence the data with {{fence}}")
        if "{data}" not in raw["user"]:
            raise RubricError(f"{path}: the user template must contain {{data}}")
        levels = {str(k): float(v) for k, v in (raw.get("levels") or {}).items()}
        flag_at = raw.get("flag_at")
        if task == "screen" and (not levels or flag_at not in levels):
            raise RubricError(f"{path}: a screening rubric needs levels and a flag_at among them")
        _check_schema(raw["output_schema"], path)
        return cls(
            id=str(raw["id"]),
            version=str(raw["version"]),
            task=task,
            description=str(raw.get("description", "")),
            system=str(raw["system"]),
            user=str(raw["user"]),
            output_schema=dict(raw["output_schema"]),
            sha256=sha256,
            path=path,
            citations=tuple(str(c) for c in raw.get("citations", [])),
            levels=levels,
            flag_at=None if flag_at is None else str(flag_at),
        )


def _check_schema(schema: Any, path: Path) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise RubricError(
            f"{path}: output_schema is not a valid JSON schema: {exc.message}"
        ) from None


def encode_messages(items: Sequence[Mapping[str, Any]]) -> str:
    """Messages as a JSON array, one per line, that cannot contain ``<`` or ``>``."""
    lines = [json.dumps(dict(item), ensure_ascii=False) for item in items]
    text = "[\n" + ",\n".join(lines) + "\n]"
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def fence_for(data: str) -> str:
    """A marker derived from the data that does not occur in it."""
    salt = 0
    while True:
        digest = hashlib.sha256(f"{salt}:{data}".encode()).hexdigest()[:16].upper()
        marker = f"DATA-{digest}"
        if marker not in data:
            return marker
        salt += 1  # pragma: no cover - needs a 64-bit collision
