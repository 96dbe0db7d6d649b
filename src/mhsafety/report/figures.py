"""Report figures (matplotlib, Agg), returned as base64 PNG for embedding in one HTML file."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

FUNNEL_STEPS = ("conversations", "flagged", "reviewed", "confirmed", "missed")
PALETTE = ("#3b6ea8", "#5b8fc9", "#8fb3dc", "#d9822b", "#b3261e")


def to_data_uri(figure: Figure) -> str:
    """Render a figure to a ``data:image/png;base64,...`` URI and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def funnel_figure(funnels: Mapping[str, Mapping[str, int]]) -> str:
    """Horizontal bars per category: conversations → flagged → reviewed → confirmed → missed."""
    categories = list(funnels)
    figure, axes = plt.subplots(1, len(categories), figsize=(3.2 * len(categories), 2.8))
    axes_list = list(axes) if len(categories) > 1 else [axes]
    for axis, category in zip(axes_list, categories, strict=True):
        values = [funnels[category].get(step, 0) for step in FUNNEL_STEPS]
        positions = range(len(FUNNEL_STEPS))[::-1]
        axis.barh(list(positions), values, color=PALETTE)
        axis.set_xscale("symlog", linthresh=10)
        axis.set_yticks(list(positions), FUNNEL_STEPS)
        axis.set_title(category, fontsize=10)
        for y, value in zip(positions, values, strict=True):
            axis.text(value if value else 0.5, y, f" {value:,}", va="center", fontsize=8)
        axis.tick_params(axis="x", labelsize=7)
        axis.spines[["top", "right"]].set_visible(False)
    figure.suptitle("Audit funnel per category (log scale)", fontsize=11)
    figure.tight_layout()
    return to_data_uri(figure)


def interval_figure(
    rows: Sequence[tuple[str, str, Mapping[str, Any]]],
    *,
    title: str,
    truth: Mapping[str, float] | None = None,
) -> str:
    """Point estimates with 95 % intervals: one row per (category, estimator label, rate)."""
    height = 0.45 * len(rows) + 1.2
    figure, axis = plt.subplots(figsize=(7.5, height))
    colours = {"flagged-only lower bound": "#d9822b", "design-based estimate": "#3b6ea8"}
    labels = []
    for y, (category, label, rate) in enumerate(reversed(rows)):
        estimate, lower, upper = (100 * float(rate[k]) for k in ("estimate", "lower", "upper"))
        colour = colours.get(label, "#555555")
        axis.errorbar(
            estimate,
            y,
            xerr=[[max(estimate - lower, 0)], [max(upper - estimate, 0)]],
            fmt="o",
            color=colour,
            capsize=3,
        )
        labels.append(f"{category} — {label}")
        if truth and label == "design-based estimate" and category in truth:
            axis.plot(100 * truth[category], y, marker="x", color="black", markersize=8)
    axis.set_yticks(range(len(rows)), labels, fontsize=8)
    axis.set_xlabel("% of all conversations")
    axis.grid(axis="x", alpha=0.3)
    axis.set_title(title + ("  (× = known truth, synthetic data)" if truth else ""), fontsize=10)
    axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return to_data_uri(figure)
