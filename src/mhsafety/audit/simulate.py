"""A simulated clinician for synthetic logs: labels the review queue from the ground truth.

Only for demos and for measuring the audit on data whose answer is known: real audits use
real clinicians. An optional error rate flips each risk label with that probability, to show
how reviewer error moves the estimates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from mhsafety.audit.labels import SIMULATED_REVIEWER
from mhsafety.taxonomy import CATEGORIES


def simulated_label_rows(
    conversation_ids: Iterable[str],
    truth: Mapping[str, Mapping[str, Any]],
    *,
    error_rate: float = 0.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Label rows (the labels-CSV columns) for the given conversations.

    Args:
        conversation_ids: The conversations in the review queue.
        truth: Ground-truth records by id (``risk`` and ``intervention`` per category, as
            written by ``mhsafety synth``).
        error_rate: Probability of flipping each risk label.
        seed: Seed for the flips.

    Raises:
        KeyError: when a queued conversation has no ground truth.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for cid in conversation_ids:
        record = truth[cid]
        row: dict[str, Any] = {"conversation_id": cid, "reviewer": SIMULATED_REVIEWER}
        for c in CATEGORIES:
            risk = bool(record["risk"].get(c, False))
            if error_rate and rng.random() < error_rate:
                risk = not risk
            row[f"risk_{c}"] = "yes" if risk else "no"
            delivered = record.get("intervention", {}).get(c) == "timely"
            row[f"intervened_{c}"] = ("yes" if delivered else "no") if risk else ""
        rows.append(row)
    return rows
