"""Measure a screening judge against clinician labels (the core of ``mhsafety judge validate``).

Screen records (``audit/screening.py``) are paired with resolved clinician labels
(``audit/labels.py``) by conversation id. Counts reconcile: labelled conversations =
compared + judge errors + labelled without a screen record. A judge error is counted apart
and never read as "no risk".

Per category, on the compared conversations as they are (unweighted): the confusion counts,
precision, recall (sensitivity) and specificity with Wilson intervals, F1 with a
Jeffreys–Dirichlet interval and Cohen's kappa with its large-sample interval.

Labels usually come from the audit's stratified review sample, where flagged conversations
are over-represented; there the unweighted recall is too high and the specificity too low.
Given inverse inclusion probabilities (:func:`design_weights`), design-weighted sensitivity,
specificity and precision are added (:func:`weighted_rates`). :func:`corrected_prevalence`
corrects a judge's apparent prevalence for its sensitivity and specificity (Rogan & Gladen
1978). Methods and their measured coverage: ``docs/statistics.md``, "Validating a judge
against clinicians". Pure apart from :func:`design_weights`, which reads ``design.csv``.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from mhsafety.audit.estimate import jeffreys_limits, mover_ratio
from mhsafety.audit.labels import LabelSet
from mhsafety.audit.workspace import Workspace
from mhsafety.judges.evaluation import Confusion
from mhsafety.stats import Rate, cohen_kappa, no_data, rogan_gladen, wilson, z_value
from mhsafety.taxonomy import CATEGORIES, Category

__all__ = [
    "CategoryValidation",
    "CorrectedPrevalence",
    "Kappa",
    "Validation",
    "WeightedRates",
    "Weighting",
    "apparent_prevalence",
    "corrected_prevalence",
    "design_weights",
    "f1_interval",
    "validate_judge",
    "weighted_rates",
]

WEIGHTED_METHOD = "weighted-mover-jeffreys"
F1_METHOD = "jeffreys-dirichlet"

METHODS_NOTE = (
    "Unweighted precision, recall and specificity: Wilson score intervals. F1: equal-tailed "
    "interval of its posterior under a Jeffreys Dirichlet(1/2) prior on the confusion cells. "
    "Cohen's kappa: large-sample SE (Fleiss, Cohen & Everitt 1969). "
    "Design-weighted rates: ratio estimators with inverse-inclusion-probability weights; each "
    "total combines per-cell Jeffreys intervals by MOVER with a term for random cell sizes, "
    "ratios by MOVER-R. Corrected prevalence: Rogan-Gladen with the delta method. See "
    "docs/statistics.md."
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Kappa:
    """Cohen's kappa with its interval; all ``nan`` when kappa is undefined."""

    estimate: float
    lower: float
    upper: float
    confidence: float = 0.95
    method: str = "fleiss-cohen-everitt"

    def to_dict(self) -> dict[str, float | str | None]:
        """Plain dict for JSON; ``nan`` becomes ``None``."""
        return {
            "estimate": _clean(self.estimate),
            "lower": _clean(self.lower),
            "upper": _clean(self.upper),
            "confidence": self.confidence,
            "method": self.method,
        }


@dataclass(frozen=True)
class WeightedRates:
    """Design-weighted figures of one category (estimated population counts as n/d).

    Attributes:
        sensitivity: Weighted share of clinician-confirmed risk that the judge flagged.
        specificity: Weighted share of no-risk conversations the judge left unflagged.
        precision: Weighted share of flagged conversations with confirmed risk.
        conversations: Compared conversations that carry a weight.
    """

    sensitivity: Rate
    specificity: Rate
    precision: Rate
    conversations: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {
            "sensitivity": self.sensitivity.to_dict(),
            "specificity": self.specificity.to_dict(),
            "precision": self.precision.to_dict(),
            "conversations": self.conversations,
        }


@dataclass(frozen=True)
class CategoryValidation:
    """A judge against clinicians on one category.

    Unweighted figures describe the compared conversations as they are; ``weighted`` (when
    weights were given) estimates the figures in the population the sample was drawn from.
    """

    category: Category
    confusion: Confusion
    precision: Rate
    recall: Rate
    specificity: Rate
    f1: Rate
    kappa: Kappa
    weighted: WeightedRates | None = None

    @property
    def sensitivity(self) -> Rate:
        """Same as :attr:`recall`."""
        return self.recall

    @property
    def operating_rates(self) -> tuple[Rate, Rate]:
        """``(sensitivity, specificity)``: design-weighted when available, else unweighted."""
        if self.weighted is not None:
            return self.weighted.sensitivity, self.weighted.specificity
        return self.recall, self.specificity

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        c = self.confusion
        return {
            "n": c.tp + c.fp + c.fn + c.tn,
            "confusion": {"tp": c.tp, "fp": c.fp, "fn": c.fn, "tn": c.tn},
            "precision": self.precision.to_dict(),
            "recall": self.recall.to_dict(),
            "specificity": self.specificity.to_dict(),
            "f1": self.f1.to_dict(),
            "kappa": self.kappa.to_dict(),
            "weighted": None if self.weighted is None else self.weighted.to_dict(),
        }


@dataclass(frozen=True)
class Weighting:
    """How the weights met the compared conversations; counts reconcile.

    ``compared = weighted + outside_design`` and ``design = weighted + design_not_compared``.

    Attributes:
        design: Conversations with a weight (the drawn review sample).
        weighted: Compared conversations with a weight.
        outside_design: Compared conversations without a weight (left out of the weighted
            figures: they were not drawn at random).
        design_not_compared: Weighted conversations not compared (not yet labelled, no
            screen record, or a judge error).
        groups_not_compared: Groups of equal weight (strata) with no compared conversation,
            judge errors aside: the conversations they stand for are missing from the
            weighted figures.
    """

    design: int
    weighted: int
    outside_design: int
    design_not_compared: int
    groups_not_compared: int

    def to_dict(self) -> dict[str, int]:
        """Plain dict for JSON."""
        return {
            "design": self.design,
            "weighted": self.weighted,
            "outside_design": self.outside_design,
            "design_not_compared": self.design_not_compared,
            "groups_not_compared": self.groups_not_compared,
        }


@dataclass(frozen=True)
class CorrectedPrevalence:
    """Apparent prevalence (share flagged) and its Rogan–Gladen correction."""

    apparent: Rate
    corrected: Rate
    weighted: bool
    """True when the judge's design-weighted sensitivity and specificity were used."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {
            "apparent": self.apparent.to_dict(),
            "corrected": self.corrected.to_dict(),
            "estimable": self.corrected.has_data,
            "sensitivity_specificity": "design-weighted" if self.weighted else "unweighted",
        }


@dataclass(frozen=True)
class Validation:
    """A screening judge measured against clinician labels.

    Counts reconcile: ``labelled = compared + judge_errors + missing_records`` and
    ``records = compared + judge_errors + unlabelled_records``.

    Attributes:
        judge: The judge's info (name, version, ...).
        confidence: Two-sided level of every interval.
        labelled: Conversations with a clinician label.
        records: Screen records read.
        compared: Labelled conversations the judge decided: the figures' base.
        judge_errors: Labelled conversations the judge could not decide (not compared).
        missing_records: Labelled conversations without a screen record.
        unlabelled_records: Screen records without a label.
        categories: Figures per category.
        weighting: How design weights met the compared conversations (None: unweighted).
        prevalence: Rogan–Gladen corrected prevalence, after :meth:`with_prevalence`.
    """

    judge: dict[str, Any]
    confidence: float
    labelled: int
    records: int
    compared: int
    judge_errors: int
    missing_records: int
    unlabelled_records: int
    categories: dict[Category, CategoryValidation]
    weighting: Weighting | None = None
    prevalence: dict[Category, CorrectedPrevalence] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        """True when both count identities hold."""
        decided = self.compared + self.judge_errors
        return (
            self.labelled == decided + self.missing_records
            and self.records == decided + self.unlabelled_records
        )

    def with_prevalence(self, apparent: Mapping[Category, Rate]) -> Validation:
        """A copy with the Rogan–Gladen corrected prevalence of each given category.

        Args:
            apparent: The judge's apparent prevalence (share of conversations flagged) per
                category, e.g. from :func:`apparent_prevalence` on a whole log.
        """
        prevalence = dict(self.prevalence)
        for key, rate in apparent.items():
            category = Category(key)
            item = self.categories[category]
            prevalence[category] = CorrectedPrevalence(
                rate, corrected_prevalence(rate, item), item.weighted is not None
            )
        return replace(self, prevalence=prevalence)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON: judge, reconciled counts, per-category figures."""
        return {
            "judge": self.judge,
            "confidence": self.confidence,
            "counts": {
                "labelled": self.labelled,
                "records": self.records,
                "compared": self.compared,
                "judge_errors": self.judge_errors,
                "missing_records": self.missing_records,
                "unlabelled_records": self.unlabelled_records,
                "reconciles": self.reconciles,
            },
            "weighting": None if self.weighting is None else self.weighting.to_dict(),
            "categories": {str(c): v.to_dict() for c, v in self.categories.items()},
            "prevalence": {str(c): p.to_dict() for c, p in self.prevalence.items()},
            "methods_note": METHODS_NOTE,
        }


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")


# --------------------------------------------------------------------------- statistics


def f1_interval(tp: int, fp: int, fn: int, confidence: float = 0.95) -> Rate:
    """F1 ``= 2TP / (2TP + FP + FN)`` with a Jeffreys–Dirichlet interval.

    The interval holds the central ``confidence`` of F1's posterior when the confusion cells
    get a Jeffreys Dirichlet(1/2, ..., 1/2) prior. It is computed exactly: F1 ``= 2J / (1 +
    J)`` is increasing in ``J = TP / (TP + FP + FN)``, whose posterior is Beta(TP + 1/2,
    FP + FN + 1), so the limits are that Beta's quantiles mapped through ``2J / (1 + J)``.
    As for the Jeffreys binomial interval, the lower limit is 0 when ``TP == 0`` and the
    upper 1 when ``FP + FN == 0``. Unlike a percentile bootstrap it does not collapse to a
    point when a cell is empty.

    Returns:
        A :class:`Rate` with numerator ``2TP`` and denominator ``2TP + FP + FN``.
    """
    _check_confidence(confidence)
    denominator = 2 * tp + fp + fn
    if denominator == 0:
        return no_data(0.0, confidence)
    alpha = 1.0 - confidence
    a, b = tp + 0.5, fp + fn + 1.0
    j_lower = 0.0 if tp == 0 else float(special.betaincinv(a, b, alpha / 2.0))
    j_upper = 1.0 if fp + fn == 0 else float(special.betaincinv(a, b, 1.0 - alpha / 2.0))
    return Rate(
        2 * tp / denominator,
        2.0 * j_lower / (1.0 + j_lower),
        2.0 * j_upper / (1.0 + j_upper),
        2 * tp,
        denominator,
        F1_METHOD,
        confidence,
    )


@dataclass(frozen=True)
class _Cells:
    """Cells of one side of a ratio: units reviewed, events among them, weight per unit."""

    units: Sequence[int]
    events: Sequence[int]
    weights: Sequence[float]


def _weighted_total(
    cells: _Cells, confidence: float, *, random_size: bool
) -> tuple[float, float, float]:
    """Weighted total of events over cells, with a MOVER interval.

    Each cell ``c`` has ``n_c`` units of weight ``w_c``, standing for ``N_c = w_c n_c``
    conversations, and ``x_c`` events; ``T = sum N_c p_c`` with ``p_c = x_c / n_c``. The
    distance to the lower limit is ``sqrt(sum_c [N_c (p_c - l_c)]^2 + s_c)`` (upper: with
    ``u_c - p_c``), ``(l_c, u_c)`` the Jeffreys interval of ``p_c`` (MOVER, Zou & Donner
    2008). ``s_c = z^2 N_c p_c^2`` when ``random_size``: the cells are formed on the judge's
    output, so their sizes vary too (a Poisson count), otherwise ``s_c = 0``. No
    finite-population correction: the figures describe the judge, not one finite log.
    """
    units = np.asarray(cells.units, dtype=np.float64)
    events = np.asarray(cells.events, dtype=np.float64)
    size = np.asarray(cells.weights, dtype=np.float64) * units
    p = events / units
    lo, hi = jeffreys_limits(events, units, confidence)
    spread = z_value(confidence) ** 2 * size * p * p if random_size else np.zeros_like(p)
    total = float((size * p).sum())
    down = math.sqrt(float(((size * (p - lo)) ** 2 + spread).sum()))
    up = math.sqrt(float(((size * (hi - p)) ** 2 + spread).sum()))
    return total, max(0.0, total - down), total + up


def _side_total(cells: _Cells, confidence: float, floor: float) -> tuple[float, float, float]:
    """A ratio side's total; a side with no cells (the judge never gave that flag) is a zero
    count with the Jeffreys zero-event allowance of a group of weight ``floor``."""
    if len(cells.units) == 0:
        allowance = float(special.gammaincinv(0.5, 0.5 + confidence / 2.0))
        return 0.0, 0.0, floor * allowance
    return _weighted_total(cells, confidence, random_size=True)


def _ratio(a: _Cells, b: _Cells, confidence: float, floor: float) -> Rate:
    """``A / (A + B)`` for weighted totals over disjoint cells, by MOVER-R."""
    ta = _side_total(a, confidence, floor)
    tb = _side_total(b, confidence, floor)
    if ta[0] + tb[0] <= 0.0:
        return no_data(0.0, confidence)
    theta, lower, upper = mover_ratio(*ta, *tb)
    return Rate(
        float(theta), float(lower), float(upper), ta[0], ta[0] + tb[0], WEIGHTED_METHOD, confidence
    )


def _mean(cells: _Cells, confidence: float) -> Rate:
    """``sum N_c p_c / sum N_c``: a weighted mean of the cells' proportions."""
    size = float(np.dot(cells.units, cells.weights))
    if size <= 0.0:
        return no_data(0.0, confidence)
    total, lower, upper = _weighted_total(cells, confidence, random_size=False)
    return Rate(total / size, lower / size, upper / size, total, size, WEIGHTED_METHOD, confidence)


def weighted_rates(
    flags: Sequence[bool],
    risk: Sequence[bool],
    weights: Sequence[float],
    *,
    confidence: float = 0.95,
) -> WeightedRates:
    """Design-weighted sensitivity, specificity and precision of one category.

    Ratio estimators, e.g. sensitivity ``sum w·flag·risk / sum w·risk`` (Horvitz–Thompson
    totals; Begg & Greenes' (1983) correction for verification bias when the sample was
    drawn on the judge's output). Units are grouped into cells of equal weight and equal
    judge flag, so a cell the design cannot contain (flagged units in an unflagged stratum)
    adds no uncertainty.

    * Sensitivity ``TP / (TP + FN)`` and specificity ``TN / (TN + FP)``: each side is a
      total over the cells of one flag value (interval of :func:`_weighted_total` with
      random cell sizes); the two sides come from disjoint cells and are combined by
      MOVER-R (Newcombe 2016) as independent. If the judge never gave one flag value, that
      side is zero with the zero-event allowance of the smallest weight's group (the most
      completely reviewed), so "never flags" does not read as an exact sensitivity of 0.
    * Precision: the weighted mean of the flagged cells' risk proportions, given the
      flagged cells (for one census cell, the Jeffreys interval).

    Simulated audits gave 93–97 % coverage at 95 % (``docs/statistics.md``).

    Args:
        flags: The judge's flag per compared conversation.
        risk: The clinicians' risk label, same order.
        weights: Each conversation's weight, the inverse of its inclusion probability (>= 1)
            adjusted for conversations of its group that were not compared.
        confidence: Two-sided level.
    """
    if not len(flags) == len(risk) == len(weights):
        raise ValueError("flags, risk and weights must have the same length")
    cells: Counter[tuple[float, bool, bool]] = Counter(zip(weights, flags, risk, strict=True))
    groups = sorted({(w, f) for w, f, _ in cells})

    def side(flag: bool, event: bool) -> _Cells:
        keys = [w for w, f in groups if f == flag]
        return _Cells(
            [cells[(w, flag, True)] + cells[(w, flag, False)] for w in keys],
            [cells[(w, flag, event)] for w in keys],
            keys,
        )

    floor = min(weights, default=1.0)
    return WeightedRates(
        sensitivity=_ratio(side(True, True), side(False, True), confidence, floor),
        specificity=_ratio(side(False, False), side(True, False), confidence, floor),
        precision=_mean(side(True, True), confidence),
        conversations=len(flags),
    )


def corrected_prevalence(apparent: Rate, validation_category: CategoryValidation) -> Rate:
    """Prevalence corrected for the judge's sensitivity and specificity (Rogan–Gladen).

    Uses the category's design-weighted Se and Sp when available, else the unweighted ones,
    as estimated rates (delta-method interval, see :func:`mhsafety.stats.rogan_gladen`).

    Args:
        apparent: Share of conversations the judge flagged for this category.
        validation_category: The judge's validation on this category.

    Returns:
        The corrected prevalence. When it cannot be estimated (Se or Sp without data, or
        ``Se + Sp <= 1``: the flags carry no information about risk) a rate with ``nan``
        estimate, interval [0, 1] and the reason in ``method``.
    """
    se, sp = validation_category.operating_rates
    if not (se.has_data and sp.has_data):
        reason = "the judge's sensitivity or specificity has no data"
    elif se.estimate + sp.estimate <= 1.0:
        reason = (
            f"Se + Sp = {se.estimate + sp.estimate:.3f} <= 1, the judge's flags carry no "
            "information about risk"
        )
    else:
        return rogan_gladen(apparent, se, sp)
    return Rate(
        math.nan,
        0.0,
        1.0,
        math.nan,
        apparent.denominator,
        f"rogan-gladen not estimable: {reason}",
        apparent.confidence,
    )


# --------------------------------------------------------------------------- pairing


def _record_flags(record: Mapping[str, Any]) -> dict[Category, bool]:
    flags = record.get("flags")
    if not isinstance(flags, Mapping) or any(str(c) not in flags for c in CATEGORIES):
        raise ValueError(f"screen record {record.get('id')!r} lacks a flag per category")
    return {c: bool(flags[str(c)]) for c in CATEGORIES}


def apparent_prevalence(
    records: Iterable[Mapping[str, Any]], *, confidence: float = 0.95
) -> dict[Category, Rate]:
    """Share of the conversations the judge decided that it flagged, per category (Wilson).

    Judge errors are left out of the denominator, as they are out of the validation.
    """
    flagged: Counter[Category] = Counter()
    decided = 0
    for record in records:
        if record.get("judge_error"):
            continue
        decided += 1
        flagged.update(c for c, f in _record_flags(record).items() if f)
    return {c: wilson(flagged[c], decided, confidence) for c in CATEGORIES}


def _judge_of(records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    judges: list[dict[str, Any]] = []
    for record in records.values():
        info = record.get("judge")
        if isinstance(info, Mapping) and dict(info) not in judges:
            judges.append(dict(info))
    if len(judges) > 1:
        names = ", ".join(f"{j.get('name')} {j.get('version')}" for j in judges)
        raise ValueError(f"records come from {len(judges)} judges ({names}); validate one")
    return judges[0] if judges else {}


def _adjusted_weights(
    weights: Mapping[str, float], compared: Iterable[str], errors: set[str]
) -> dict[str, float]:
    """Weights of the compared conversations, adjusted within groups of equal weight.

    A group's design conversations (judge errors excluded) are represented by its compared
    ones: each weight is multiplied by ``design / compared`` of its group (missing at random
    within the group, as in the audit estimate).
    """
    for cid, w in weights.items():
        if not (math.isfinite(w) and w >= 1.0):
            raise ValueError(f"weight of {cid!r} is {w!r}: need 1/inclusion probability >= 1")
    ids = [cid for cid in compared if cid in weights]
    design = Counter(w for cid, w in weights.items() if cid not in errors)
    reviewed = Counter(weights[cid] for cid in ids)
    return {cid: weights[cid] * design[weights[cid]] / reviewed[weights[cid]] for cid in ids}


def validate_judge(
    records: Iterable[Mapping[str, Any]],
    labels: LabelSet,
    *,
    weights: Mapping[str, float] | None = None,
    judge: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
) -> Validation:
    """Measure a screening judge's flags against clinician risk labels.

    Args:
        records: Screen records (``id``, ``flags`` per category, optional ``judge_error``
            and ``judge``); conversations without a label are counted, not used.
        labels: Resolved clinician labels.
        weights: Conversation id → inverse inclusion probability in the review sample (see
            :func:`design_weights`), to add design-weighted rates. Ids sharing a weight form
            one group (a stratum, or strata sampled at the same rate); within a group the
            compared conversations stand for the group's others that were not compared,
            judge errors excepted (those are outside what the rates describe). Compared
            conversations without a weight are left out of the weighted rates and counted.
        judge: The judge's info; by default taken from the records' ``judge`` field.
        confidence: Two-sided level of every interval.

    Raises:
        ValueError: If a record id repeats, a record lacks a category's flag, the records
            come from several judges, or a weight is below 1.
    """
    _check_confidence(confidence)
    by_id: dict[str, Mapping[str, Any]] = {}
    for record in records:
        cid = str(record["id"])
        if cid in by_id:
            raise ValueError(f"screen record {cid!r} appears twice")
        by_id[cid] = record
    errors = {cid for cid, r in by_id.items() if r.get("judge_error")}
    compared: list[str] = []
    missing = 0
    for cid in sorted(labels.labels):
        if cid not in by_id:
            missing += 1
        elif cid not in errors:
            compared.append(cid)
    labelled_errors = sum(1 for cid in errors if cid in labels.labels)
    flags = {cid: _record_flags(by_id[cid]) for cid in compared}
    adjusted: dict[str, float] | None = None
    weighting: Weighting | None = None
    if weights is not None:
        adjusted = _adjusted_weights(weights, compared, errors)
        groups = {w for cid, w in weights.items() if cid not in errors}
        weighting = Weighting(
            design=len(weights),
            weighted=len(adjusted),
            outside_design=len(compared) - len(adjusted),
            design_not_compared=len(weights) - len(adjusted),
            groups_not_compared=len(groups - {weights[cid] for cid in adjusted}),
        )

    categories: dict[Category, CategoryValidation] = {}
    for c in CATEGORIES:
        predicted = [flags[cid][c] for cid in compared]
        gold = [labels.labels[cid].risk[c] for cid in compared]
        pairs = Counter(zip(predicted, gold, strict=True))
        confusion = Confusion(
            pairs[True, True], pairs[True, False], pairs[False, True], pairs[False, False]
        )
        weighted = None
        if adjusted is not None:
            ids = [cid for cid in compared if cid in adjusted]
            weighted = weighted_rates(
                [flags[cid][c] for cid in ids],
                [labels.labels[cid].risk[c] for cid in ids],
                [adjusted[cid] for cid in ids],
                confidence=confidence,
            )
        kappa = cohen_kappa(gold, predicted, confidence)
        tp, fp, fn, tn = confusion.tp, confusion.fp, confusion.fn, confusion.tn
        categories[c] = CategoryValidation(
            category=c,
            confusion=confusion,
            precision=wilson(tp, tp + fp, confidence),
            recall=wilson(tp, tp + fn, confidence),
            specificity=wilson(tn, tn + fp, confidence),
            f1=f1_interval(tp, fp, fn, confidence),
            kappa=Kappa(kappa[0], kappa[1], kappa[2], confidence),
            weighted=weighted,
        )

    return Validation(
        judge=dict(judge) if judge is not None else _judge_of(by_id),
        confidence=confidence,
        labelled=len(labels.labels),
        records=len(by_id),
        compared=len(compared),
        judge_errors=labelled_errors,
        missing_records=missing,
        unlabelled_records=len(by_id) - len(compared) - labelled_errors,
        categories=categories,
        weighting=weighting,
    )


# --------------------------------------------------------------------------- I/O


def design_weights(source: Workspace | Path) -> dict[str, float]:
    """Inverse inclusion probabilities of the audit's review sample, by conversation id.

    Args:
        source: An audit workspace (or its folder), or the path of its ``design.csv``
            (columns ``id``, ``stratum``, ``inclusion_prob``, ``review_order``).

    Raises:
        ValueError: If a column is missing, an id repeats or a probability is not in (0, 1].
    """
    if isinstance(source, Workspace):
        path = source.design
    else:
        path = Workspace(source).design if source.is_dir() else source
    weights: dict[str, float] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"id", "inclusion_prob"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(sorted(missing))}")
        for record in reader:
            cid, probability = record["id"], float(record["inclusion_prob"])
            if cid in weights:
                raise ValueError(f"{path}: id {cid!r} appears twice")
            if not 0.0 < probability <= 1.0:
                raise ValueError(f"{path}: {cid!r} has inclusion probability {probability!r}")
            weights[cid] = 1.0 / probability
    return weights
