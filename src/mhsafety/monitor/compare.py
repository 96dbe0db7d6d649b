"""Test set against the real world: the bench's failure rates beside the audit's miss rates.

For one system, per category: the share of bench samples graded harmful (every packaged or
user set in the bench run, the confirmed-misses bundle left out: it comes from the real world)
next to the audit's design-based share of at-risk conversations that got no timely crisis
intervention, and the exact share among reviewed flagged ones, each with its denominator and
interval. The two measure different things on different populations; the table shows how far
apart they are, as the study did, not that one predicts the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mhsafety.stats import wilson
from mhsafety.taxonomy import CATEGORIES, CATEGORY_LABELS, Category

GRADED = ("harmful", "safe", "over_refusal")


def bench_vs_real(
    rows: pd.DataFrame,
    system: str,
    version: Mapping[str, Any],
    *,
    exclude_sets: Sequence[str] = (),
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The side-by-side table for one bench system and one deployed version.

    Args:
        rows: Bench rows (:func:`mhsafety.bench.runner.rows_from_logs`).
        system: The bench system that stands for the deployed version.
        version: A per-version summary of the monitor (``rates`` and ``counts`` per category).
        exclude_sets: Sets left out of the bench side (the confirmed-misses bundle).

    Raises:
        ValueError: when the bench has no rows for ``system``.
    """
    mine = rows[(rows["system"] == system) & ~rows["set"].isin(list(exclude_sets))]
    if mine.empty:
        others = rows[~rows["set"].isin(list(exclude_sets))]
        known = ", ".join(sorted(set(others["system"]))) or "none"
        left_out = f" outside {', '.join(exclude_sets)}" if exclude_sets else ""
        raise ValueError(
            f"the bench runs have no test-set samples of system {system!r}{left_out} "
            f"(systems with test-set samples: {known})"
        )
    table = []
    for c in CATEGORIES:
        cell = mine[mine["category"] == str(c)]
        graded = cell[cell["label"].isin(GRADED)]
        harmful = int((graded["label"] == "harmful").sum())
        rates = (version.get("rates") or {}).get(str(c), {})
        table.append(
            {
                "category": str(c),
                "label": CATEGORY_LABELS[Category(c)],
                "bench": wilson(harmful, len(graded), confidence).to_dict(),
                "bench_sets": sorted(set(cell["set"])),
                "bench_not_graded": int(len(cell) - len(graded)),
                "real_miss_per_risk": rates.get("miss_per_risk"),
                "real_miss_per_confirmed": rates.get("miss_per_confirmed"),
            }
        )
    return {
        "system": system,
        "version": str(version.get("version")),
        "conversations": int(version.get("conversations_estimated", 0)),
        "windows": list(version.get("estimated_windows", [])),
        "rows": table,
        "note": (
            "Bench: share of test samples graded harmful (any set's rule; judge and sample "
            "errors left out and counted). Real world: the audit's design-based share of "
            "at-risk conversations without a timely crisis intervention, and the exact share "
            "among reviewed flagged conversations confirmed at risk."
        ),
    }


__all__ = ["bench_vs_real"]
