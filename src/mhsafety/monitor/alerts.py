"""Alert rules as data, and their evaluation over a monitor's windows (pure).

Rules live in ``data/monitor/alerts.yaml`` (or a user's copy); the file documents every
field. Two kinds:

* ``threshold``: a window's metric (one category) crosses a limit, read at the interval's
  lower bound, the estimate, or the upper bound;
* ``change``: a later system version (or window) is worse than the one before, by Fisher's
  exact test on exact review counts, Holm-adjusted over every comparison of the rule.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from scipy import stats as sps

from mhsafety.stats import holm
from mhsafety.taxonomy import CATEGORIES

Bound = Literal["lower", "estimate", "upper"]
RATE_METRICS = ("miss_per_risk", "miss_rate", "prevalence", "recall", "flag_rate")
"""Metrics with an interval (threshold rules)."""
COUNT_METRICS = ("miss_per_confirmed",)
"""Metrics with exact counts (threshold and change rules)."""
BETWEEN = ("versions", "windows")


class AlertRuleError(ValueError):
    """An alert rules file that cannot be used (the message names the rule and field)."""


@dataclass(frozen=True)
class AlertRule:
    """One rule of the alert file."""

    id: str
    kind: Literal["threshold", "change"]
    metric: str
    categories: tuple[str, ...]
    message: str = ""
    bound: Bound = "lower"
    above: float | None = None
    below: float | None = None
    between: str = "versions"
    alpha: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "metric": self.metric,
            "categories": list(self.categories),
            "message": self.message,
        }
        if self.kind == "threshold":
            out |= {"bound": self.bound, "above": self.above, "below": self.below}
        else:
            out |= {"between": self.between, "alpha": self.alpha}
        return out


@dataclass(frozen=True)
class AlertRules:
    """A loaded rules file."""

    version: str
    source: str
    rules: tuple[AlertRule, ...]


def default_rules_path() -> Path:
    """The packaged rules."""
    return Path(str(resources.files("mhsafety") / "data" / "monitor" / "alerts.yaml"))


def _rule(raw: Any, where: str) -> AlertRule:
    if not isinstance(raw, dict):
        raise AlertRuleError(f"{where}: a rule is a mapping")
    rid = str(raw.get("id") or "").strip()
    if not rid:
        raise AlertRuleError(f"{where}: a rule needs an id")
    where = f"{where} ({rid})"
    kind = raw.get("kind")
    metric = str(raw.get("metric", ""))
    cats = raw.get("categories", "all")
    categories = (
        tuple(str(c) for c in CATEGORIES) if cats == "all" else tuple(str(c) for c in cats or [])
    )
    unknown = sorted(set(categories) - {str(c) for c in CATEGORIES})
    if unknown or not categories:
        raise AlertRuleError(f"{where}: categories must be 'all' or some of {list(CATEGORIES)}")
    message = str(raw.get("message", "")).strip()
    if kind == "threshold":
        if metric not in RATE_METRICS + COUNT_METRICS:
            raise AlertRuleError(f"{where}: metric must be one of {RATE_METRICS + COUNT_METRICS}")
        bound = raw.get("bound", "lower")
        if bound not in ("lower", "estimate", "upper"):
            raise AlertRuleError(f"{where}: bound must be lower, estimate or upper")
        above, below = raw.get("above"), raw.get("below")
        if (above is None) == (below is None):
            raise AlertRuleError(f"{where}: give exactly one of above: or below:")
        try:
            limit = float(str(above if above is not None else below))
        except ValueError:
            raise AlertRuleError(f"{where}: the limit must be a number") from None
        if not 0.0 <= limit <= 1.0:
            raise AlertRuleError(f"{where}: the limit is a share between 0 and 1")
        return AlertRule(
            rid,
            "threshold",
            metric,
            categories,
            message,
            bound=bound,
            above=None if above is None else float(above),
            below=None if below is None else float(below),
        )
    if kind == "change":
        if metric not in COUNT_METRICS:
            raise AlertRuleError(f"{where}: change rules test {COUNT_METRICS} (exact counts)")
        between = raw.get("between", "versions")
        if between not in BETWEEN:
            raise AlertRuleError(f"{where}: between must be one of {BETWEEN}")
        alpha = float(raw.get("alpha", 0.05))
        if not 0.0 < alpha < 1.0:
            raise AlertRuleError(f"{where}: alpha must lie in (0, 1)")
        return AlertRule(rid, "change", metric, categories, message, between=between, alpha=alpha)
    raise AlertRuleError(f"{where}: kind must be threshold or change, not {kind!r}")


def load_rules(path: Path | None = None) -> AlertRules:
    """Read and check a rules file (the packaged one by default)."""
    path = path or default_rules_path()
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AlertRuleError(f"{path}: cannot read alert rules: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise AlertRuleError(f"{path}: needs a 'rules:' list")
    rules = tuple(_rule(r, f"{path}: rule {i + 1}") for i, r in enumerate(raw["rules"]))
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise AlertRuleError(f"{path}: rule ids must be unique")
    return AlertRules(str(raw.get("version", "")), str(path), rules)


@dataclass(frozen=True)
class Alert:
    """A rule that fired, with the figures that made it fire."""

    rule: str
    category: str
    where: str
    """The window label, or ``A → B`` for a change."""
    message: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rule": self.rule,
            "category": self.category,
            "where": self.where,
            "message": self.message,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Counts:
    """Exact review counts of one group (a window or a version) and category."""

    confirmed: int
    """Reviewed flagged conversations confirmed at risk."""
    missed: int
    """Of those, without a timely crisis intervention."""


@dataclass(frozen=True)
class ChangeTest:
    """One comparison of a change rule."""

    rule: str
    category: str
    before: str
    after: str
    counts_before: Counts
    counts_after: Counts
    p: float
    p_holm: float = math.nan
    fired: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""

        def share(c: Counts) -> float | None:
            return c.missed / c.confirmed if c.confirmed else None

        return {
            "rule": self.rule,
            "category": self.category,
            "before": self.before,
            "after": self.after,
            "missed_before": self.counts_before.missed,
            "confirmed_before": self.counts_before.confirmed,
            "share_before": share(self.counts_before),
            "missed_after": self.counts_after.missed,
            "confirmed_after": self.counts_after.confirmed,
            "share_after": share(self.counts_after),
            "p": None if math.isnan(self.p) else self.p,
            "p_holm": None if math.isnan(self.p_holm) else self.p_holm,
            "test": "fisher-exact (one-sided: worse after)",
            "fired": self.fired,
        }


@dataclass
class AlertResult:
    """Every alert that fired and every comparison made."""

    alerts: list[Alert] = field(default_factory=list)
    tests: list[ChangeTest] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Checks that could not be made (a window awaiting review, an empty group)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "alerts": [a.to_dict() for a in self.alerts],
            "tests": [t.to_dict() for t in self.tests],
            "skipped": list(self.skipped),
        }


def _percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def _threshold(rule: AlertRule, label: str, category: str, rate: Mapping[str, Any]) -> Alert | None:
    value = rate.get(rule.bound)
    if value is None:
        return None
    value = float(value)
    fired = (rule.above is not None and value > rule.above) or (
        rule.below is not None and value < rule.below
    )
    if not fired:
        return None
    limit = rule.above if rule.above is not None else rule.below
    side = "above" if rule.above is not None else "below"
    shown = {k: rate.get(k) for k in ("estimate", "lower", "upper")}
    detail = (
        f"{rule.metric} {_percent(float(shown['estimate'] or 0))} "
        f"(CI {_percent(float(shown['lower'] or 0))}–{_percent(float(shown['upper'] or 0))}); "
        f"the {rule.bound} value is {side} {_percent(float(limit or 0))}"
    )
    return Alert(rule.id, category, label, rule.message, detail)


def fisher_worse(before: Counts, after: Counts) -> float:
    """One-sided Fisher exact p-value that ``after`` misses more often than ``before``."""
    if not before.confirmed or not after.confirmed:
        return math.nan
    table = [
        [after.missed, after.confirmed - after.missed],
        [before.missed, before.confirmed - before.missed],
    ]
    return float(sps.fisher_exact(table, alternative="greater").pvalue)


def evaluate(
    rules: AlertRules,
    windows: Sequence[Mapping[str, Any]],
    groups: Mapping[str, Sequence[Sequence[tuple[str, Mapping[str, Counts]]]]],
) -> AlertResult:
    """Check every rule.

    Args:
        rules: The loaded rules.
        windows: Audited windows in time order, each with ``label``, ``status`` and
            ``rates`` (category -> metric -> rate dict with ``estimate``/``lower``/``upper``).
        groups: For change rules, ``versions`` and ``windows``: chains of groups, each chain
            in order (consecutive groups of a chain are compared), each group with its exact
            counts per category.
    """
    result = AlertResult()
    for rule in rules.rules:
        if rule.kind == "threshold":
            for window in windows:
                rates = window.get("rates") or {}
                for category in rule.categories:
                    rate = (rates.get(category) or {}).get(rule.metric)
                    if not rate or rate.get("method") == "no-data" or not rate.get("denominator"):
                        result.skipped.append(
                            f"{rule.id}: {window['label']} {category}: no {rule.metric} "
                            f"({window.get('status', 'not estimated')})"
                        )
                        continue
                    alert = _threshold(rule, str(window["label"]), category, rate)
                    if alert:
                        result.alerts.append(alert)
            continue
        tests: list[ChangeTest] = []
        pairs = [p for chain in groups.get(rule.between, []) for p in itertools.pairwise(chain)]
        for (before, counts_a), (after, counts_b) in pairs:
            for category in rule.categories:
                a = counts_a.get(category, Counts(0, 0))
                b = counts_b.get(category, Counts(0, 0))
                tests.append(ChangeTest(rule.id, category, before, after, a, b, fisher_worse(a, b)))
        adjusted = holm([t.p for t in tests])
        for test, p_holm in zip(tests, adjusted, strict=True):
            fired = not math.isnan(p_holm) and p_holm < rule.alpha
            done = ChangeTest(**{**test.__dict__, "p_holm": p_holm, "fired": fired})
            result.tests.append(done)
            if math.isnan(test.p):
                result.skipped.append(
                    f"{rule.id}: {test.before} → {test.after} {test.category}: no confirmed "
                    "risk to compare on one side"
                )
            if fired:
                ca, cb = done.counts_before, done.counts_after
                result.alerts.append(
                    Alert(
                        rule.id,
                        test.category,
                        f"{test.before} → {test.after}",
                        rule.message,
                        f"missed {cb.missed}/{cb.confirmed} after vs {ca.missed}/{ca.confirmed} "
                        f"before; p = {test.p:.2g}, Holm p = {p_holm:.2g} < {rule.alpha}",
                    )
                )
    return result


__all__ = [
    "COUNT_METRICS",
    "RATE_METRICS",
    "Alert",
    "AlertResult",
    "AlertRule",
    "AlertRuleError",
    "AlertRules",
    "ChangeTest",
    "Counts",
    "default_rules_path",
    "evaluate",
    "fisher_worse",
    "load_rules",
]
