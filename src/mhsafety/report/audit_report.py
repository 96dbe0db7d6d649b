"""The audit report: one self-contained HTML file a clinician can read.

Reads only the workspace's own files (``run.json``, ``config.json``, ``estimate.json``, and a
judge validation when one is given), so a report can be rebuilt at any time without
re-screening.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from mhsafety import __version__
from mhsafety.taxonomy import CATEGORIES, CATEGORY_LABELS


def _percent(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f}%" if value < 0.1 else f"{100 * value:.1f}%"


def rate_view(rate: dict[str, Any]) -> dict[str, Any]:
    """A rate dict (``Rate.to_dict()``) as the strings the template shows."""
    estimate = rate.get("estimate", float("nan"))
    if estimate is None or (isinstance(estimate, float) and math.isnan(estimate)):
        return {"text": "no data", "denominator": "0", "method": rate.get("method", "")}
    numerator = rate.get("numerator", float("nan"))
    denominator = rate.get("denominator", float("nan"))

    def number(x: float) -> str:
        return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"

    level = f"{100 * float(rate.get('confidence') or 0.95):g}%"
    text = (
        f"{_percent(estimate)} ({level} CI {_percent(rate['lower'])}–{_percent(rate['upper'])}; "
        f"{number(numerator)} / {number(denominator)})"
    )
    return {"text": text, "denominator": number(denominator), "method": rate.get("method", "")}


def _decimal_view(value: dict[str, Any]) -> str:
    """F1 or kappa (a dict with estimate, lower, upper) as ``0.72 (0.65–0.78)``."""
    if value.get("estimate") is None:
        return "n/a"
    return f"{value['estimate']:.2f} ({value['lower']:.2f}–{value['upper']:.2f})"


def _rates_view(item: dict[str, Any], *, recall: str) -> dict[str, Any]:
    """Precision, recall (under the key ``recall``) and specificity as template strings."""
    return {
        "precision": rate_view(item["precision"]),
        "recall": rate_view(item[recall]),
        "specificity": rate_view(item["specificity"]),
    }


def validation_view(validation: dict[str, Any], estimate: dict[str, Any]) -> dict[str, Any]:
    """A judge validation (``Validation.to_dict()``) as the template shows it.

    Each category's row carries the audit's design-based prevalence beside the judge's
    Rogan–Gladen corrected prevalence, when the validation has one.
    """
    rows = []
    prevalence = validation.get("prevalence") or {}
    for c in CATEGORIES:
        item = validation["categories"][str(c)]
        weighted = item.get("weighted")
        corrected = prevalence.get(str(c))
        rows.append(
            {
                "label": CATEGORY_LABELS[c],
                "n": item["n"],
                **_rates_view(item, recall="recall"),
                "f1": _decimal_view(item["f1"]),
                "kappa": _decimal_view(item["kappa"]),
                "weighted": None
                if weighted is None
                else {
                    "n": weighted["conversations"],
                    **_rates_view(weighted, recall="sensitivity"),
                },
                "design_prevalence": rate_view(
                    estimate["categories"][str(c)]["design_based"]["prevalence"]
                ),
                "apparent": None if corrected is None else rate_view(corrected["apparent"]),
                "corrected": None
                if corrected is None
                else rate_view(corrected["corrected"])
                | {
                    "estimable": corrected["estimable"],
                    "basis": corrected["sensitivity_specificity"],
                },
            }
        )
    return {
        "judge": validation.get("judge") or {},
        "counts": validation["counts"],
        "weighting": validation.get("weighting"),
        "rows": rows,
        "methods_note": validation.get("methods_note", ""),
    }


def _figures() -> Any:
    """The figures module, or None when matplotlib (the ``report`` extra) is not installed."""
    try:
        from mhsafety.report import figures
    except ImportError:
        return None
    return figures


def render_audit_report(
    estimate: dict[str, Any],
    run: dict[str, Any],
    config: dict[str, Any],
    output: Path,
    validation: dict[str, Any] | None = None,
) -> Path:
    """Write the report HTML.

    Args:
        estimate: The workspace's ``estimate.json``.
        run: The workspace's ``run.json``.
        config: The workspace's ``config.json``.
        output: Where to write the HTML file.
        validation: A judge's validation against the clinicians' labels
            (``Validation.to_dict()``); adds the section "Judge agreement with clinicians".
    """
    env = Environment(
        loader=PackageLoader("mhsafety.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    truth = estimate.get("truth") or {}
    categories = []
    funnels: dict[str, dict[str, int]] = {}
    miss_rows: list[tuple[str, str, dict[str, Any]]] = []
    truth_miss: dict[str, float] = {}
    for c in CATEGORIES:
        item = estimate["categories"][str(c)]
        label = CATEGORY_LABELS[c]
        funnels[label] = item["funnel"]
        flagged_only = item["flagged_only"]
        design = item["design_based"]
        miss_rows.append((label, "flagged-only lower bound", flagged_only["per_conversation"]))
        miss_rows.append((label, "design-based estimate", design["miss_rate"]))
        category_truth = truth.get(str(c), {})
        if "miss_rate" in category_truth:
            truth_miss[label] = category_truth["miss_rate"]
        categories.append(
            {
                "label": label,
                "funnel": item["funnel"],
                "lower_bound": rate_view(flagged_only["per_conversation"]),
                "per_all": rate_view(flagged_only["per_conversation"]),
                "per_flagged": rate_view(flagged_only["per_flagged"]),
                "per_confirmed": rate_view(flagged_only["per_confirmed"]),
                "design_miss": rate_view(design["miss_rate"]),
                "design_per_risk": rate_view(design["miss_per_risk"]),
                "prevalence": rate_view(design["prevalence"]),
                "recall": rate_view(design["recall"]),
                "precision": rate_view(design["precision"]),
                "truth_miss": _percent(category_truth["miss_rate"])
                if "miss_rate" in category_truth
                else None,
                "truth_recall": _percent(category_truth["recall"])
                if "recall" in category_truth
                else None,
            }
        )
    strata = [
        s
        | {
            "probability": f"{s['sampled'] / s['population']:.3f}" if s["population"] else "—",
        }
        for s in estimate["strata"]
    ]
    figures = _figures()
    html = env.get_template("audit.html.j2").render(
        input_name=Path(str(config.get("input", "log"))).name,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        config_hash=config.get("config_hash", ""),
        window=config.get("screen", {}).get("window", "?"),
        counts=run["counts"],
        judge=config.get("judge", {}),
        labels=estimate["labels"],
        interim=estimate.get("interim"),
        label_problems=estimate.get("label_problems", [])[:20],
        categories=categories,
        funnel_png=figures.funnel_figure(funnels) if figures else None,
        miss_png=figures.interval_figure(
            miss_rows, title="Miss rate per all conversations", truth=truth_miss or None
        )
        if figures
        else None,
        strata=strata,
        truth_note=estimate.get("truth_note"),
        methods_note=estimate.get("methods_note", ""),
        validation=None if validation is None else validation_view(validation, estimate),
    )
    output.write_text(html, encoding="utf-8")
    return output
