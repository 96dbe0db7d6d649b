"""The monitor's HTML report: trend, alerts, regression items, bench vs real world, coverage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from mhsafety import __version__
from mhsafety.report.audit_report import rate_view
from mhsafety.taxonomy import CATEGORIES, CATEGORY_LABELS

METRIC_LABELS = {
    "miss_per_risk": "miss rate among at-risk (design-based)",
    "miss_per_confirmed": "misses among reviewed flagged confirmed at risk",
    "miss_rate": "misses per conversation (design-based)",
    "prevalence": "prevalence (design-based)",
    "recall": "screen recall (design-based)",
    "flag_rate": "flagged share",
}

SHOWN_CLUSTERS = 20
"""Coverage groups shown in the report (uncovered and largest first); all are in the JSON."""


def _cell(rate: dict[str, Any] | None) -> str:
    return rate_view(rate)["text"] if rate else "—"


def render_monitor_report(
    trend: dict[str, Any],
    output: Path,
    *,
    coverage: dict[str, Any] | None = None,
    regressions: dict[str, Any] | None = None,
    comparison: dict[str, Any] | None = None,
) -> Path:
    """Write the report HTML and return its path."""
    env = Environment(
        loader=PackageLoader("mhsafety.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    categories = [(str(c), CATEGORY_LABELS[c]) for c in CATEGORIES]
    windows = []
    for window in trend["windows"]:
        rates = window.get("rates") or {}
        truth = window.get("truth") or {}
        windows.append(
            {
                **window,
                "flag_any": _cell(rates.get("any", {}).get("flag_rate")),
                "cells": [
                    {
                        "label": label,
                        "miss_per_risk": _cell(rates.get(key, {}).get("miss_per_risk")),
                        "miss_per_confirmed": _cell(rates.get(key, {}).get("miss_per_confirmed")),
                        "prevalence": _cell(rates.get(key, {}).get("prevalence")),
                        "truth": truth.get(key, {}).get("miss_per_risk"),
                    }
                    for key, label in categories
                ],
            }
        )
    versions = [
        {
            **v,
            "cells": [
                {
                    "label": label,
                    "miss_per_risk": _cell((v["rates"].get(key) or {}).get("miss_per_risk")),
                    "miss_per_confirmed": _cell(
                        (v["rates"].get(key) or {}).get("miss_per_confirmed")
                    ),
                }
                for key, label in categories
            ],
        }
        for v in trend["versions"]
    ]
    alerted = [a["where"] for a in trend["alerts"]]
    figure = None
    estimated = [w for w in trend["windows"] if w["status"] != "open"]
    if estimated:
        try:
            from mhsafety.report.figures import trend_figure
        except ImportError:  # the report extra is not installed: tables only
            figure = None
        else:
            figure = trend_figure(
                estimated, categories, alerted=alerted, confidence=trend["confidence"]
            )
    if comparison:
        comparison = {
            **comparison,
            "cells": [
                {
                    "label": row["label"],
                    "bench": _cell(row["bench"]),
                    "bench_sets": ", ".join(row["bench_sets"]) or "—",
                    "not_graded": row["bench_not_graded"],
                    "real": _cell(row["real_miss_per_risk"]),
                    "real_confirmed": _cell(row["real_miss_per_confirmed"]),
                }
                for row in comparison["rows"]
            ],
        }
    if regressions:
        regressions = {
            **regressions,
            "system_cells": [
                {"system": name, **tally, "text": _cell(tally["rate"])}
                for name, tally in regressions["systems"].items()
            ],
        }
    html = env.get_template("monitor.html.j2").render(
        trend=trend,
        windows=windows,
        versions=versions,
        categories=categories,
        figure=figure,
        metric_labels=METRIC_LABELS,
        coverage=coverage,
        regressions=regressions,
        comparison=comparison,
        shown_clusters=SHOWN_CLUSTERS,
        estimated_windows=sum(w["status"] in ("estimated", "interim") for w in trend["windows"]),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, "utf-8")
    return output


__all__ = ["render_monitor_report"]
