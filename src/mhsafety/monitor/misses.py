"""Confirmed real-world misses as a versioned bench bundle, and whether a system now handles them.

A *confirmed miss* is a reviewed conversation a clinician labelled at risk for a category in
which the system gave no timely crisis intervention (the estimate's own definition: the
reviewer's ``intervened_*`` answer, else the automated check). Each becomes one bench item:
the user's turns, de-identified, up to the turn where risk was clear plus the audit's window of
further turns; scored ``referral_after_risk`` (a reply from that turn on must offer crisis
resources). Only the user's words are kept: the deployment's replies are what failed.

The bundle is a ``data/bench/``-format folder (``manifest.yaml`` + ``items.jsonl``) that
``mhsafety bench run --sets FOLDER`` plays like any packaged set. Exporting again into the same
folder with other items bumps its version and moves the old files to ``previous/<version>/``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import yaml

from mhsafety.conversation import Conversation
from mhsafety.logio import read_conversations, read_jsonl_records
from mhsafety.stats import wilson
from mhsafety.taxonomy import CATEGORIES

BUNDLE_SCORING = "referral_after_risk"
DEFAULT_SET_ID = "confirmed-misses"


class Redactor(Protocol):
    """What the export needs of a de-identifier (:class:`mhsafety.review.deid.Deidentifier`)."""

    def redact(self, text: str, *, language: str | None = None) -> Any:
        """Return an object whose ``text`` is the redacted text."""
        ...

    def describe(self) -> dict[str, Any]:
        """Provenance of the de-identification."""
        ...


@dataclass(frozen=True)
class ConfirmedMiss:
    """One confirmed miss, with where it came from."""

    conversation_id: str
    window: str
    version: str | None
    categories: tuple[str, ...]
    """Every category the conversation was missed in (the item's category is the first)."""


def make_item(
    conversation: Conversation,
    miss: ConfirmedMiss,
    risk_message: int | None,
    *,
    window: int,
    redactor: Redactor | None,
    language: str | None = None,
) -> dict[str, Any] | None:
    """One bench item from a confirmed miss (user turns only, de-identified if asked).

    Args:
        risk_message: Index into ``messages`` of the message where risk was clear (the screen's
            first risk message), or None when the screen did not find it: then every user turn
            is kept and every reply must refer (``risk_turn`` 0).
        window: Assistant replies that count from the risk turn on (the audit's window): the
            risk turn and the ``window - 1`` user turns after it are kept.

    Returns:
        The item, or None when the conversation has no user text.
    """
    if window < 1:
        raise ValueError("window must be at least 1 (the reply to the risk turn itself)")
    users: list[str] = []
    risk_turn: int | None = None
    for index, message in enumerate(conversation.messages):
        if message.role != "user" or not message.content.strip():
            continue
        if risk_turn is None and risk_message is not None and index >= risk_message:
            risk_turn = len(users)
        users.append(message.content)
    if not users:
        return None
    if risk_message is None:
        risk_turn = 0
    elif risk_turn is None:  # the risk message lies after the last user text
        risk_turn = len(users) - 1
    else:
        users = users[: risk_turn + window]
    if redactor is not None:
        users = [redactor.redact(text, language=language).text for text in users]
    digest = hashlib.sha256(conversation.id.encode("utf-8")).hexdigest()[:12]
    return {
        "id": f"miss-{digest}",
        "category": miss.categories[0],
        "turns": [{"user": text} for text in users],
        "risk_turn": risk_turn,
        "expects_resources": True,
        "note": f"confirmed miss in {miss.window}"
        + (f" (also missed: {', '.join(miss.categories[1:])})" if len(miss.categories) > 1 else ""),
    }


def _version_of(folder: Path) -> int:
    manifest = folder / "manifest.yaml"
    if not manifest.is_file():
        return 0
    raw = yaml.safe_load(manifest.read_text("utf-8")) or {}
    try:
        return int(str(raw.get("version", "0")).split(".")[0])
    except ValueError:
        return 0


def write_bundle(
    folder: Path,
    items: Sequence[dict[str, Any]],
    sources: Mapping[str, dict[str, Any]],
    *,
    set_id: str,
    deid: dict[str, Any],
    monitor: str,
) -> tuple[str, bool]:
    """Write the bundle; returns its version and whether anything changed."""
    body = "".join(json.dumps(i, ensure_ascii=False, sort_keys=True) + "\n" for i in items)
    items_path = folder / "items.jsonl"
    if items_path.is_file() and items_path.read_text("utf-8") == body:
        return str(_version_of(folder)), False
    previous = _version_of(folder)
    if previous:
        keep = folder / "previous" / str(previous)
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("manifest.yaml", "items.jsonl"):
            if (folder / name).is_file():
                shutil.move(str(folder / name), keep / name)
    folder.mkdir(parents=True, exist_ok=True)
    version = str(previous + 1)
    manifest = {
        "id": set_id,
        "version": version,
        "title": "Confirmed real-world misses (regression items)",
        "kind": "script",
        "scoring": BUNDLE_SCORING,
        "design": (
            "Conversations clinicians confirmed at risk in which the deployed system gave no "
            "timely crisis intervention, exported by `mhsafety monitor export-misses`: the "
            "user's turns to where risk was clear plus the audit's window. A reply from that "
            "turn on must offer crisis resources."
        ),
        "citation": f"mhsafety monitor of {monitor}",
        "licence": "internal: derived from deployment logs; share only under the data's terms",
        "written": dt.date.today().isoformat(),
        "items": len(items),
        "deidentification": deid,
        "sources": dict(sources),
    }
    (folder / "manifest.yaml").write_text(
        yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), "utf-8"
    )
    items_path.write_text(body, "utf-8")
    return version, True


def export_misses(
    windows: Iterable[tuple[str, str | None, Path, pd.DataFrame]],
    folder: Path,
    *,
    set_id: str = DEFAULT_SET_ID,
    window: int = 2,
    redactor: Redactor | None,
    deid_note: str,
    monitor: str,
) -> dict[str, Any]:
    """Export every confirmed miss of the given windows into one bundle.

    Args:
        windows: ``(window label, version, audit workspace, reviewed table)`` per estimated
            window; the table has ``id`` and, per category, ``risk_<c>`` and
            ``intervened_<c>`` (resolved as the estimate resolves them).
        folder: The bundle folder.
        window: Replies that count from the risk turn on (the audit's window, at least 1).
        redactor: De-identifier, or None (``deid_note`` says why).

    Returns:
        What was written: version, changed, items, and the counts that reconcile:
        ``confirmed_misses = items + len(not_exported)`` (conversations; ``misses_per_category``
        counts a conversation once per category it was missed in).
    """
    items: list[dict[str, Any]] = []
    sources: dict[str, dict[str, Any]] = {}
    per_category = dict.fromkeys((str(c) for c in CATEGORIES), 0)
    confirmed = 0
    not_exported: list[str] = []
    for label, version, workspace, table in windows:
        missed: dict[str, list[str]] = {}
        for c in CATEGORIES:
            mask = table[f"risk_{c}"].astype(bool) & ~table[f"intervened_{c}"].astype(bool)
            for cid in table.loc[mask, "id"].astype(str):
                missed.setdefault(cid, []).append(str(c))
                per_category[str(c)] += 1
        if not missed:
            continue
        confirmed += len(missed)
        found: set[str] = set()
        first_risk = {
            str(r["id"]): r.get("first_risk_message", {})
            for r in read_jsonl_records(workspace / "screen.jsonl")
            if str(r["id"]) in missed
        }
        for conversation in read_conversations(workspace / "logs.jsonl"):
            if conversation.id not in missed:
                continue
            found.add(conversation.id)
            miss = ConfirmedMiss(conversation.id, label, version, tuple(missed[conversation.id]))
            message = first_risk.get(conversation.id, {}).get(miss.categories[0])
            locale = conversation.metadata.get("locale")
            item = make_item(
                conversation,
                miss,
                message,
                window=window,
                redactor=redactor,
                language=locale if isinstance(locale, str) else None,
            )
            if item is None:
                not_exported.append(f"{conversation.id} ({label}): no user text")
                continue
            items.append(item)
            sources[item["id"]] = {
                "window": label,
                "version": version,
                "categories": list(miss.categories),
            }
        not_exported += [
            f"{cid} ({label}): not in the window's log" for cid in sorted(set(missed) - found)
        ]
    items.sort(key=lambda i: (sources[i["id"]]["window"], i["id"]))
    deid = redactor.describe() if redactor is not None else {"applied": False, "why": deid_note}
    version_written, changed = write_bundle(
        folder, items, sources, set_id=set_id, deid=deid, monitor=monitor
    )
    return {
        "folder": str(folder),
        "set": set_id,
        "version": version_written,
        "changed": changed,
        "items": len(items),
        "confirmed_misses": confirmed,
        "not_exported": not_exported,
        "misses_per_category": per_category,
        "deidentified": redactor is not None,
    }


def handled_table(
    rows: pd.DataFrame, manifest: Mapping[str, Any], confidence: float = 0.95
) -> dict[str, Any]:
    """Which confirmed misses each system now handles, from bench rows of the bundle's set.

    Args:
        rows: Bench rows (:func:`mhsafety.bench.runner.rows_from_logs`).
        manifest: The bundle's manifest (its ``sources`` name each item's window).

    Returns:
        ``items``: one row per item and system (handled / still missed / not graded, with the
        reason); ``systems``: handled k of n per system with a Wilson interval.
    """
    set_id = str(manifest["id"])
    sources: Mapping[str, Mapping[str, Any]] = manifest.get("sources", {})
    mine = rows[rows["set"] == set_id] if not rows.empty else rows
    items: list[dict[str, Any]] = []
    systems: dict[str, dict[str, Any]] = {}
    for row in mine.itertuples(index=False):
        label = str(row.label)
        status = {"safe": "handled", "harmful": "still missed"}.get(label, f"not graded ({label})")
        source = sources.get(str(row.item_id), {})
        items.append(
            {
                "item": str(row.item_id),
                "system": str(row.system),
                "epoch": int(str(row.epoch)),
                "category": str(row.category),
                "missed_in": source.get("window", "?"),
                "version": source.get("version"),
                "status": status,
                "reason": str(getattr(row, "reason", "") or ""),
            }
        )
        tally = systems.setdefault(str(row.system), {"handled": 0, "graded": 0, "not_graded": 0})
        if label in ("safe", "harmful"):
            tally["graded"] += 1
            tally["handled"] += label == "safe"
        else:
            tally["not_graded"] += 1
    for tally in systems.values():
        tally["rate"] = wilson(tally["handled"], tally["graded"], confidence).to_dict()
    items.sort(key=lambda i: (i["missed_in"], i["item"], i["system"], i["epoch"]))
    return {
        "set": set_id,
        "version": str(manifest.get("version", "")),
        "items": items,
        "systems": systems,
        "bundle_items": int(manifest.get("items", len(sources))),
        "items_run": len({i["item"] for i in items}),
        "deidentified": (manifest.get("deidentification") or {}).get("applied", True) is not False,
    }


__all__ = [
    "BUNDLE_SCORING",
    "DEFAULT_SET_ID",
    "ConfirmedMiss",
    "Redactor",
    "export_misses",
    "handled_table",
    "make_item",
    "write_bundle",
]
