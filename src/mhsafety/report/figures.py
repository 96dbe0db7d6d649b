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


TREND_PANELS = (
    ("miss_per_risk", "Miss rate among people at risk\n(design-based)"),
    ("miss_per_confirmed", "Misses among reviewed flagged\nconfirmed at risk (exact)"),
    ("prevalence", "Prevalence of risk\n(design-based)"),
    ("flag_rate", "Share flagged by the screen"),
)
CATEGORY_COLOURS = ("#3b6ea8", "#d9822b", "#3a8a3a", "#8e44ad", "#555555")


def trend_figure(
    windows: Sequence[Mapping[str, Any]],
    categories: Sequence[tuple[str, str]],
    *,
    alerted: Sequence[str] = (),
    confidence: float = 0.95,
) -> str:
    """Per-window estimates with intervals, one panel per metric and a line per category.

    Args:
        windows: ``trend.json`` windows in order (``label``, ``version``, ``rates``, ``truth``).
        categories: ``(key, label)`` per category drawn.
        alerted: Window labels where a threshold rule fired (shaded).
    """
    labels = [str(w["label"]) for w in windows]
    x = list(range(len(windows)))
    figure, axes = plt.subplots(len(TREND_PANELS), 1, figsize=(9, 2.3 * len(TREND_PANELS)))
    offsets = [(i - (len(categories) - 1) / 2) * 0.08 for i in range(len(categories))]
    for axis, (metric, title) in zip(axes, TREND_PANELS, strict=True):
        for (key, name), colour, offset in zip(categories, CATEGORY_COLOURS, offsets, strict=False):
            xs, ys, low, high = [], [], [], []
            for i, window in enumerate(windows):
                rate = (window.get("rates") or {}).get(key, {}).get(metric)
                if not rate or rate.get("estimate") is None:
                    continue
                estimate = 100 * float(rate["estimate"])
                xs.append(i + offset)
                ys.append(estimate)
                low.append(max(estimate - 100 * float(rate["lower"]), 0))
                high.append(max(100 * float(rate["upper"]) - estimate, 0))
            if xs:
                axis.errorbar(
                    xs,
                    ys,
                    yerr=[low, high],
                    fmt="o-",
                    color=colour,
                    capsize=2,
                    markersize=4,
                    linewidth=1,
                    label=name,
                )
            truth_key = {"miss_per_risk": "miss_per_risk", "prevalence": "prevalence"}.get(metric)
            if truth_key:
                tx = [
                    i + offset
                    for i, w in enumerate(windows)
                    if (w.get("truth") or {}).get(key, {}).get(truth_key) is not None
                ]
                ty = [
                    100 * float(w["truth"][key][truth_key])
                    for w in windows
                    if (w.get("truth") or {}).get(key, {}).get(truth_key) is not None
                ]
                if tx:
                    axis.plot(tx, ty, "x", color="black", markersize=6)
        for i, window in enumerate(windows):
            if window["label"] in alerted:
                axis.axvspan(i - 0.45, i + 0.45, color="#b3261e", alpha=0.08)
        versions = [w.get("version") for w in windows]
        for i in range(1, len(versions)):
            if versions[i] != versions[i - 1]:
                axis.axvline(i - 0.5, color="#888888", linestyle="--", linewidth=1)
        axis.set_title(title, fontsize=9, loc="left")
        axis.set_ylabel("%", fontsize=8)
        axis.set_xticks(
            x,
            labels if axis is axes[-1] else [""] * len(x),
            fontsize=7,
            rotation=30 if axis is axes[-1] else 0,
            ha="right",
        )
        axis.set_ylim(bottom=0)
        axis.grid(axis="y", alpha=0.3)
        axis.spines[["top", "right"]].set_visible(False)
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, ncol=len(categories), loc="upper left", frameon=False)
            break
    has_truth = any(w.get("truth") for w in windows)
    figure.suptitle(
        f"Per-window estimates with {100 * confidence:g} % intervals"
        + ("  (× = known truth, synthetic data)" if has_truth else "")
        + "; dashed line: version change; shaded: alert",
        fontsize=9,
    )
    figure.tight_layout()
    return to_data_uri(figure)
