"""Small-sample statistics shared by the audit, the benchmark and the guard.

Every rate travels as a :class:`Rate`: estimate, interval, numerator, denominator and the
interval method, so that no figure is ever reported without its denominator. Functions
here are pure and never divide by zero: an empty denominator gives a ``"no-data"`` rate.

References are listed in ``docs/statistics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as _sm_mcnemar
from statsmodels.stats.inter_rater import cohens_kappa as _sm_cohens_kappa
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

__all__ = [
    "Rate",
    "TestResult",
    "clopper_pearson",
    "cohen_kappa",
    "fisher_or_chi2",
    "holm",
    "mcnemar",
    "no_data",
    "proportion",
    "rogan_gladen",
    "rule_of_three",
    "wilson",
    "z_value",
]


def z_value(confidence: float) -> float:
    """Two-sided standard-normal critical value, e.g. 1.96 for ``confidence=0.95``."""
    _check_confidence(confidence)
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")


def _check_counts(k: float, n: float) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k!r}, n={n!r}")


def _fmt_pct(x: float) -> str:
    """Percent with one decimal, or two significant digits below 1%."""
    if math.isnan(x):
        return "n/a"
    pct = 100.0 * x
    if pct == 0.0:
        return "0"
    if abs(pct) < 1.0:
        return f"{pct:.2g}"
    return f"{pct:.1f}"


def _fmt_count(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.1f}"


@dataclass(frozen=True)
class Rate:
    """A proportion with its interval, numerator, denominator and method.

    Attributes:
        estimate: Point estimate in [0, 1]; ``nan`` when there is no data.
        lower: Lower confidence limit.
        upper: Upper confidence limit.
        numerator: Count (or design-based estimated count) of events.
        denominator: Count (or estimated count) of units the rate is taken over.
        method: Interval method, e.g. ``"wilson"``, ``"clopper-pearson"``,
            ``"rule-of-three"``, ``"mover-jeffreys"``, ``"no-data"``.
        confidence: Two-sided confidence level of ``[lower, upper]``.
    """

    estimate: float
    lower: float
    upper: float
    numerator: float
    denominator: float
    method: str
    confidence: float = 0.95

    @property
    def has_data(self) -> bool:
        """False for a ``"no-data"`` rate (empty denominator)."""
        return not math.isnan(self.estimate)

    @property
    def width(self) -> float:
        """Interval width ``upper - lower``."""
        return self.upper - self.lower

    def to_dict(self) -> dict[str, float | str | None]:
        """Plain dict for JSON; ``nan`` becomes ``None``."""

        def clean(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "estimate": clean(self.estimate),
            "lower": clean(self.lower),
            "upper": clean(self.upper),
            "numerator": clean(self.numerator),
            "denominator": clean(self.denominator),
            "method": self.method,
            "confidence": self.confidence,
        }

    def __str__(self) -> str:
        level = f"{100.0 * self.confidence:g}%"
        counts = f"{_fmt_count(self.numerator)}/{_fmt_count(self.denominator)}"
        if not self.has_data:
            return f"no data ({counts}, {self.method})"
        return (
            f"{_fmt_pct(self.estimate)}% ({level} CI {_fmt_pct(self.lower)}–"
            f"{_fmt_pct(self.upper)}%; {counts}, {self.method})"
        )


def no_data(numerator: float = 0.0, confidence: float = 0.95) -> Rate:
    """The rate of an empty denominator: ``nan`` estimate, interval [0, 1], method "no-data".

    The interval is the whole parameter space: with no units, every value is compatible.
    """
    return Rate(math.nan, 0.0, 1.0, float(numerator), 0.0, "no-data", confidence)


def _binomial_interval(k: int, n: int, confidence: float, sm_method: str, name: str) -> Rate:
    """A statsmodels ``proportion_confint`` interval as a :class:`Rate`, exact at 0 and n."""
    _check_confidence(confidence)
    _check_counts(k, n)
    if n == 0:
        return no_data(k, confidence)
    lo, hi = proportion_confint(k, n, alpha=1.0 - confidence, method=sm_method)
    lo_f = 0.0 if k == 0 else max(0.0, float(lo))
    hi_f = 1.0 if k == n else min(1.0, float(hi))
    return Rate(k / n, lo_f, hi_f, k, n, name, confidence)


def wilson(k: int, n: int, confidence: float = 0.95) -> Rate:
    """Wilson score interval (Wilson 1927) for ``k`` events in ``n`` trials.

    Args:
        k: Number of events.
        n: Number of trials; ``n == 0`` gives :func:`no_data`.
        confidence: Two-sided level.

    Returns:
        A :class:`Rate` with method ``"wilson"``.
    """
    return _binomial_interval(k, n, confidence, "wilson", "wilson")


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> Rate:
    """Exact (Clopper & Pearson 1934) interval; coverage is at least ``confidence``.

    Args:
        k: Number of events.
        n: Number of trials; ``n == 0`` gives :func:`no_data`.
        confidence: Two-sided level.

    Returns:
        A :class:`Rate` with method ``"clopper-pearson"``.
    """
    return _binomial_interval(k, n, confidence, "beta", "clopper-pearson")


def rule_of_three(n: int, confidence: float = 0.95) -> Rate:
    """Exact upper bound for zero events in ``n`` trials (Hanley & Lippman-Hand 1983).

    Uses the exact bound ``upper = 1 - alpha**(1/n)`` with ``alpha = 1 - confidence``: the
    largest rate under which seeing no event still has probability ``alpha``. For 95% this
    is about ``3/n`` (hence the name) and is a one-sided bound; the lower limit is 0, which
    cannot be missed, so ``[0, upper]`` has coverage ``confidence`` when no event is seen.

    Args:
        n: Number of trials, all without the event; ``n == 0`` gives :func:`no_data`.
        confidence: Confidence level of the bound.

    Returns:
        A :class:`Rate` with estimate 0 and method ``"rule-of-three"``.
    """
    _check_confidence(confidence)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    if n == 0:
        return no_data(0, confidence)
    upper = 1.0 - (1.0 - confidence) ** (1.0 / n)
    return Rate(0.0, 0.0, upper, 0, n, "rule-of-three", confidence)


def proportion(k: int, n: int, method: str = "auto", confidence: float = 0.95) -> Rate:
    """A proportion with an interval; never raises for ``n == 0``.

    Args:
        k: Number of events.
        n: Number of trials.
        method: ``"auto"`` (Wilson; for ``k == 0`` the exact zero-event bound of
            :func:`rule_of_three`, and its mirror image for ``k == n``), ``"wilson"``,
            ``"clopper-pearson"``/``"exact"``, or ``"rule-of-three"`` (``k`` must be 0).
        confidence: Two-sided level.

    Returns:
        A :class:`Rate`; ``method`` names the interval actually used.
    """
    _check_confidence(confidence)
    _check_counts(k, n)
    if n == 0:
        return no_data(k, confidence)
    if method == "wilson":
        return wilson(k, n, confidence)
    if method in ("clopper-pearson", "exact"):
        return clopper_pearson(k, n, confidence)
    if method == "rule-of-three":
        if k != 0:
            raise ValueError("rule-of-three needs k == 0")
        return rule_of_three(n, confidence)
    if method != "auto":
        raise ValueError(f"unknown method {method!r}")
    if k == 0:
        return rule_of_three(n, confidence)
    if k == n:
        lower = (1.0 - confidence) ** (1.0 / n)
        return Rate(1.0, lower, 1.0, k, n, "rule-of-three", confidence)
    return wilson(k, n, confidence)


@dataclass(frozen=True)
class TestResult:
    """Result of a hypothesis test: statistic, p-value and the test used."""

    __test__ = False  # not a pytest test class

    statistic: float
    pvalue: float
    method: str

    def to_dict(self) -> dict[str, float | str]:
        """Plain dict for JSON."""
        return {"statistic": self.statistic, "pvalue": self.pvalue, "method": self.method}


def _label_table(a: Sequence[object], b: Sequence[object]) -> np.ndarray:
    if len(a) != len(b):
        raise ValueError(f"ratings differ in length: {len(a)} vs {len(b)}")
    labels = sorted({*a, *b}, key=repr)
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)), dtype=float)
    for x, y in zip(a, b, strict=True):
        table[index[x], index[y]] += 1.0
    return table


def cohen_kappa(
    a: Sequence[object], b: Sequence[object], confidence: float = 0.95
) -> tuple[float, float, float]:
    """Cohen's kappa between two raters with a Wald interval on the analytic SE.

    The standard error is the large-sample (non-null) SE of Fleiss, Cohen & Everitt (1969)
    as computed by statsmodels' ``cohens_kappa``; the interval is ``kappa +/- z*SE``
    clipped to [-1, 1]. It is a large-sample interval: with few items or extreme
    prevalence prefer a bootstrap.

    Args:
        a: Labels from rater A (any hashable values).
        b: Labels from rater B, same items in the same order.
        confidence: Two-sided level.

    Returns:
        ``(kappa, lower, upper)``; all ``nan`` when kappa is undefined (no items, or
        both raters use one single label).
    """
    z = z_value(confidence)
    table = _label_table(a, b)
    n = table.sum()
    if n == 0:
        return (math.nan, math.nan, math.nan)
    p_exp = float((table.sum(0) * table.sum(1)).sum() / n**2)
    if math.isclose(p_exp, 1.0):
        return (math.nan, math.nan, math.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        # statsmodels also computes a z statistic we do not use; with perfect agreement its
        # null SE is 0 and that division warns
        res = _sm_cohens_kappa(table)
    kappa = float(res["kappa"])
    se = math.sqrt(max(float(res["var_kappa"]), 0.0))
    return (kappa, max(-1.0, kappa - z * se), min(1.0, kappa + z * se))


def _value_and_var(x: Rate | float) -> tuple[float, float]:
    """Point value and a variance recovered from the interval: ((upper-lower)/(2z))^2."""
    if isinstance(x, Rate):
        if not x.has_data:
            raise ValueError("rogan_gladen needs rates with data")
        half = (x.upper - x.lower) / (2.0 * z_value(x.confidence))
        return x.estimate, half * half
    return float(x), 0.0


def rogan_gladen(
    apparent_prevalence: Rate, sensitivity: Rate | float, specificity: Rate | float
) -> Rate:
    """True prevalence corrected for an imperfect test (Rogan & Gladen 1978).

    ``pi = (AP + Sp - 1) / (Se + Sp - 1)``, clipped to [0, 1]. Interval, at the level of
    ``apparent_prevalence``:

    * Se and Sp known (floats): the interval of ``apparent_prevalence`` is mapped through
      the same increasing formula, so it keeps that interval's coverage.
    * Se or Sp estimated (:class:`Rate`): delta method, ``Var(pi) = [Var(AP) +
      pi^2 Var(Se) + (1-pi)^2 Var(Sp)] / (Se+Sp-1)^2``, each variance recovered from its
      rate's interval as ``((upper - lower) / 2z)^2``; Wald interval clipped to [0, 1].
      It can undercover with small samples or prevalence near 0 (Lang & Reiczigel 2014).

    Args:
        apparent_prevalence: Test-positive rate in the target sample.
        sensitivity: Sensitivity, as a rate estimated on a validation sample or a float.
        specificity: Specificity, likewise.

    Returns:
        A :class:`Rate` whose numerator is the corrected number of positives.

    Raises:
        ValueError: If ``Se + Sp <= 1`` (the test carries no information).
    """
    conf = apparent_prevalence.confidence
    if not apparent_prevalence.has_data:
        return no_data(0.0, conf)
    ap, var_ap = _value_and_var(apparent_prevalence)
    se, var_se = _value_and_var(sensitivity)
    sp, var_sp = _value_and_var(specificity)
    youden = se + sp - 1.0
    if youden <= 0.0:
        raise ValueError(f"Se + Sp must exceed 1, got {se + sp:.3f}")

    def correct(x: float) -> float:
        return min(1.0, max(0.0, (x + sp - 1.0) / youden))

    pi = correct(ap)
    n = apparent_prevalence.denominator
    if var_se == 0.0 and var_sp == 0.0:
        lo, hi = correct(apparent_prevalence.lower), correct(apparent_prevalence.upper)
        method = f"rogan-gladen ({apparent_prevalence.method})"
    else:
        raw = (ap + sp - 1.0) / youden
        var = (var_ap + raw**2 * var_se + (1.0 - raw) ** 2 * var_sp) / youden**2
        half = z_value(conf) * math.sqrt(var)
        lo, hi = max(0.0, raw - half), min(1.0, raw + half)
        method = "rogan-gladen (delta)"
    return Rate(pi, lo, hi, pi * n, n, method, conf)


def fisher_or_chi2(table: Sequence[Sequence[int]] | np.ndarray) -> TestResult:
    """Test of independence in a contingency table.

    A 2x2 table with any expected count below 5 (Cochran's rule) gets Fisher's exact test
    (statistic: the sample odds ratio); otherwise Pearson's chi-square without Yates'
    correction (statistic: chi-square). Larger tables always get chi-square; the method
    string warns when some expected count is below 5.

    Args:
        table: Non-negative integer counts, at least 2x2.

    Returns:
        A :class:`TestResult`; p-value ``nan`` when a margin is empty.
    """
    arr = np.asarray(table, dtype=float)
    if arr.ndim != 2 or min(arr.shape) < 2 or (arr < 0).any():
        raise ValueError("need a non-negative table of at least 2x2")
    rows, cols = arr.sum(1), arr.sum(0)
    if (rows == 0).any() or (cols == 0).any():
        return TestResult(math.nan, math.nan, "undefined (empty margin)")
    expected = np.outer(rows, cols) / arr.sum()
    small = bool((expected < 5.0).any())
    if arr.shape == (2, 2) and small:
        res = sps.fisher_exact(arr.astype(int))
        return TestResult(float(res.statistic), float(res.pvalue), "fisher-exact")
    chi2, p, _, _ = sps.chi2_contingency(arr, correction=False)
    method = "chi2 (some expected counts < 5)" if small else "chi2"
    return TestResult(float(chi2), float(p), method)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values (family-wise error control).

    Args:
        pvalues: Raw p-values in any order; ``nan`` entries stay ``nan``.

    Returns:
        Adjusted p-values in the input order.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return [float(x) for x in out]


def mcnemar(
    table: Sequence[Sequence[int]] | np.ndarray, *, exact: bool | None = None
) -> TestResult:
    """McNemar's test for paired binary outcomes (e.g. two screens on the same items).

    Exact binomial test on the discordant pairs when there are fewer than 25 of them (or
    always, with ``exact=True``), otherwise the continuity-corrected chi-square (statsmodels).

    Args:
        table: 2x2 table of paired outcomes ``[[both+, A+B-], [A-B+, both-]]``.
        exact: Force the exact test (True) or the chi-square (False); None chooses by size.

    Returns:
        A :class:`TestResult` (statistic: the smaller discordant count when exact,
        chi-square otherwise); p-value 1 with no discordant pairs.
    """
    arr = np.asarray(table, dtype=float)
    if arr.shape != (2, 2) or (arr < 0).any():
        raise ValueError("need a non-negative 2x2 table")
    discordant = arr[0, 1] + arr[1, 0]
    if discordant == 0:
        return TestResult(0.0, 1.0, "mcnemar (no discordant pairs)")
    if exact is None:
        exact = bool(discordant < 25)
    res = _sm_mcnemar(arr, exact=exact, correction=True)
    method = "mcnemar-exact" if exact else "mcnemar-chi2-cc"
    return TestResult(float(res.statistic), float(res.pvalue), method)
