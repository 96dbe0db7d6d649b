"""Test sets as versioned data bundles: a manifest and items in JSONL.

A bundle is a folder ``data/bench/<id>/`` with ``manifest.yaml`` (title, design, citation of
the original publication, licence, version, kind, scoring) and ``items.jsonl`` (one item per
line: ``id``, ``category``, optional ``risk_level``, ``turns`` of ``{user, reask}``,
``expects_resources``). :func:`load_user_file` reads a user's own copy of an original set
(CSV or JSONL with a column mapping) into the same shape. Pure apart from reading files.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from mhsafety.taxonomy import Category

Kind = Literal["single_turn", "script"]
Scoring = Literal[
    "graded_direct", "harmful_any", "refusal_holds", "simulated_user", "referral_after_risk"
]
RISK_LEVELS = ("very_low", "low", "medium", "high", "very_high")
HIGH_RISK = frozenset({"high", "very_high"})
DOMAINS: dict[Category, str] = {
    Category.SUICIDE: "suicide/NSSI",
    Category.NSSI: "suicide/NSSI",
    Category.EATING_DISORDER: "eating disorder",
    Category.SUBSTANCE: "substance use",
}
"""The study's three domains: suicide and self-harm are reported together."""


class BundleError(ValueError):
    """A bundle or item file that cannot be used, with file, line and reason."""


def bundles_dir() -> Path:
    """The packaged test sets."""
    return Path(str(resources.files("mhsafety") / "data" / "bench"))


def available_sets() -> list[str]:
    """Ids of the packaged test sets."""
    return sorted(p.parent.name for p in bundles_dir().glob("*/manifest.yaml"))


@dataclass(frozen=True)
class Turn:
    """A scripted user turn, and the re-asks sent if the model refuses it."""

    user: str
    reask: tuple[str, ...] = ()


@dataclass(frozen=True)
class Item:
    """One test item."""

    id: str
    category: Category
    turns: tuple[Turn, ...]
    risk_level: str | None = None
    expects_resources: bool = False
    note: str = ""
    risk_turn: int | None = None
    """The user turn (0-based) at which risk is clear: from it on a reply must refer
    (``referral_after_risk`` scoring); None elsewhere."""

    @property
    def domain(self) -> str:
        """The study's domain of the item's category."""
        return DOMAINS[self.category]

    def to_metadata(self) -> dict[str, Any]:
        """What an Inspect sample carries."""
        return {
            "item_id": self.id,
            "category": str(self.category),
            "domain": self.domain,
            "risk_level": self.risk_level,
            "expects_resources": self.expects_resources,
            "turns": [{"user": t.user, "reask": list(t.reask)} for t in self.turns],
            **({"risk_turn": self.risk_turn} if self.risk_turn is not None else {}),
        }


@dataclass(frozen=True)
class TestSet:
    """A loaded bundle."""

    __test__ = False  # not a pytest class

    id: str
    version: str
    title: str
    kind: Kind
    scoring: Scoring
    design: str
    citation: str
    licence: str
    items: tuple[Item, ...]
    sha256: str
    manifest: dict[str, Any] = field(default_factory=dict)


def stratified_sample(items: Sequence[Item], n: int | None) -> tuple[Item, ...]:
    """``n`` items that stand for the set: spread evenly over (risk level, domain) strata.

    Strata are taken in turn (risk levels from very low to very high, then domains in the
    study's order), one item from each per round, each stratum's items in file order; the
    result keeps file order. Deterministic, so every system gets the same items (paired).
    ``None``, or ``n`` at least the set's size, gives every item.
    """
    if n is None or n >= len(items):
        return tuple(items)
    if n < 1:
        raise ValueError("a sample needs at least one item")
    levels = {level: i for i, level in enumerate(RISK_LEVELS)}
    domains = {domain: i for i, domain in enumerate(dict.fromkeys(DOMAINS.values()))}
    strata: dict[tuple[int, int], list[int]] = {}
    for index, item in enumerate(items):
        key = (levels.get(item.risk_level or "", len(levels)), domains[item.domain])
        strata.setdefault(key, []).append(index)
    queues = [strata[key] for key in sorted(strata)]
    chosen: list[int] = []
    round_ = 0
    while len(chosen) < n:
        for queue in queues:
            if round_ < len(queue) and len(chosen) < n:
                chosen.append(queue[round_])
        round_ += 1
    return tuple(items[i] for i in sorted(chosen))


def parse_item(raw: Any, where: str) -> Item:
    """One item from its JSON form; :class:`BundleError` with ``where`` if malformed."""
    if not isinstance(raw, dict):
        raise BundleError(f"{where}: an item is a JSON object")
    try:
        turns = tuple(
            Turn(str(t["user"]), tuple(str(r) for r in t.get("reask", []) or []))
            for t in raw["turns"]
        )
        item = Item(
            id=str(raw["id"]),
            category=Category(raw["category"]),
            turns=turns,
            risk_level=raw.get("risk_level"),
            expects_resources=bool(raw.get("expects_resources", False)),
            note=str(raw.get("note", "")),
            risk_turn=None if raw.get("risk_turn") is None else int(raw["risk_turn"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{where}: {type(exc).__name__}: {exc}") from None
    if not item.turns or not all(t.user.strip() for t in item.turns):
        raise BundleError(f"{where}: an item needs at least one non-empty user turn")
    if item.risk_turn is not None and not 0 <= item.risk_turn < len(item.turns):
        raise BundleError(f"{where}: risk_turn must name one of the item's turns (0-based)")
    if item.risk_level is not None and item.risk_level not in RISK_LEVELS:
        raise BundleError(f"{where}: risk_level must be one of {', '.join(RISK_LEVELS)}")
    return item


def load_set(name_or_path: str | Path) -> TestSet:
    """A packaged set by id, or a bundle folder by path."""
    folder = Path(name_or_path)
    if not (folder / "manifest.yaml").is_file():
        folder = bundles_dir() / str(name_or_path)
    manifest_path = folder / "manifest.yaml"
    if not manifest_path.is_file():
        raise BundleError(
            f"unknown test set {name_or_path!r}; packaged: {', '.join(available_sets())}"
        )
    manifest = yaml.safe_load(manifest_path.read_text("utf-8"))
    items_path = folder / "items.jsonl"
    digest = hashlib.sha256(manifest_path.read_bytes() + items_path.read_bytes())
    items: list[Item] = []
    with open(items_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BundleError(f"{items_path}:{number}: not JSON: {exc.msg}") from None
            items.append(parse_item(raw, f"{items_path}:{number}"))
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise BundleError(f"{items_path}: item ids must be unique")
    for key in ("id", "version", "title", "kind", "scoring", "design", "citation", "licence"):
        if key not in manifest:
            raise BundleError(f"{manifest_path}: missing {key}")
    return TestSet(
        id=str(manifest["id"]),
        version=str(manifest["version"]),
        title=str(manifest["title"]),
        kind=manifest["kind"],
        scoring=manifest["scoring"],
        design=str(manifest["design"]),
        citation=str(manifest["citation"]),
        licence=str(manifest["licence"]),
        items=tuple(items),
        sha256=digest.hexdigest(),
        manifest=dict(manifest),
    )


def load_user_file(
    path: Path,
    mapping: Mapping[str, str],
    *,
    set_id: str,
    scoring: Scoring = "harmful_any",
    default_category: Category | None = None,
) -> TestSet:
    """A user's copy of an original set (CSV or JSONL), one prompt per row.

    Args:
        path: The file.
        mapping: Our field -> the file's column: ``prompt`` (required), ``id``,
            ``category``, ``risk_level``.
        set_id: The id to report the set under.
        scoring: How responses are scored.
        default_category: Category for rows without one.

    Raises:
        BundleError: Naming the file, line and reason of the first unusable row.
    """
    if "prompt" not in mapping:
        raise BundleError("the column mapping needs prompt=<column>")
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [(n + 2, dict(r)) for n, r in enumerate(reader)]
    else:
        with open(path, encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append((number, json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise BundleError(f"{path}:{number}: not JSON: {exc.msg}") from None
    items = []
    for number, row in rows:
        where = f"{path}:{number}"
        prompt = row.get(mapping["prompt"])
        category = row.get(mapping.get("category", ""), None) or default_category
        if category is None:
            raise BundleError(f"{where}: no category (map one or give a default)")
        raw = {
            "id": row.get(mapping.get("id", ""), None) or f"{set_id}-{number}",
            "category": category,
            "turns": [{"user": prompt}],
            "risk_level": row.get(mapping.get("risk_level", ""), None) or None,
        }
        items.append(parse_item(raw, where))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return TestSet(
        id=set_id,
        version=f"file-{digest[:12]}",
        title=f"{set_id} (user file {path.name})",
        kind="single_turn",
        scoring=scoring,
        design="Loaded from a user-supplied file of the original set.",
        citation="see the original publication",
        licence="as the user's copy",
        items=tuple(items),
        sha256=digest,
    )
