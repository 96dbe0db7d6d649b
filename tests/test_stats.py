"""Small-sample statistics: known values and edge cases."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mhsafety.stats import (
    Rate,
    clopper_pearson,
    cohen_kappa,
    fisher_or_chi2,
    holm,
    mcnemar,
    proportion,
    rogan_gladen,
    rule_of_three,
    wilson,
    z_value,
)

Z95 = 1.959963984540054


def wilson_by_hand(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_wilson_zero_of_ten_matches_closed_form() -> None:
    r = wilson(0, 10)
    assert r.estimate == 0.0
    assert r.lower == 0.0
    assert r.upper == pytest.approx(Z95**2 / (10 + Z95**2), abs=1e-12)  # 0.2775
    assert r.upper == pytest.approx(0.2775, abs=1e-4)


def test_wilson_five_of_hundred_matches_hand_computation() -> None:
    r = wilson(5, 100)
    lo, hi = wilson_by_hand(5, 100)
    assert (r.lower, r.upper) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert (r.lower, r.upper) == (pytest.approx(0.0215, abs=1e-4), pytest.approx(0.1118, abs=1e-4))


@pytest.mark.parametrize(
    ("k", "n", "lower", "upper"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombe_1998_table(k: int, n: int, lower: float, upper: float) -> None:
    r = wilson(k, n)
    assert r.lower == pytest.approx(lower, abs=1e-4)
    assert r.upper == pytest.approx(upper, abs=1e-4)


def test_clopper_pearson_matches_exact_values() -> None:
    r = clopper_pearson(5, 100)  # beta quantiles Beta(.025; 5, 96), Beta(.975; 6, 95)
    assert r.lower == pytest.approx(0.016432, abs=1e-6)
    assert r.upper == pytest.approx(0.112835, abs=1e-6)
    zero = clopper_pearson(0, 10)
    assert zero.lower == 0.0
    assert zero.upper == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-12)
    full = clopper_pearson(10, 10)
    assert full.upper == 1.0
    assert full.lower == pytest.approx(0.025 ** (1 / 10), abs=1e-12)


def test_rule_of_three_is_the_exact_zero_event_bound() -> None:
    r = rule_of_three(100)
    assert r.upper == pytest.approx(1 - 0.05 ** (1 / 100), abs=1e-15)
    assert r.upper == pytest.approx(3 / 100, rel=0.02)
    assert r.method == "rule-of-three"
    # P(no event | p = upper) is exactly alpha
    assert (1 - r.upper) ** 100 == pytest.approx(0.05)


def test_proportion_auto_switches_at_the_edges() -> None:
    assert proportion(3, 50).method == "wilson"
    zero = proportion(0, 200)
    assert zero.method == "rule-of-three"
    assert zero.upper == pytest.approx(rule_of_three(200).upper)
    full = proportion(200, 200)
    assert full.method == "rule-of-three"
    assert full.upper == 1.0
    assert full.lower == pytest.approx(1 - rule_of_three(200).upper)
    assert proportion(0, 200, method="wilson").method == "wilson"
    assert proportion(2, 20, method="exact").method == "clopper-pearson"


@pytest.mark.parametrize("fn", [wilson, clopper_pearson])
def test_empty_denominator_is_no_data_not_an_error(fn: object) -> None:
    r = fn(0, 0)  # type: ignore[operator]
    assert isinstance(r, Rate)
    assert math.isnan(r.estimate)
    assert r.method == "no-data"
    assert not r.has_data
    assert (r.lower, r.upper) == (0.0, 1.0)
    assert proportion(0, 0).method == "no-data"
    assert rule_of_three(0).method == "no-data"
    assert "no data" in str(r)
    json.dumps(r.to_dict(), allow_nan=False)


def test_invalid_counts_raise() -> None:
    with pytest.raises(ValueError):
        wilson(5, 3)
    with pytest.raises(ValueError):
        proportion(1, 10, method="rule-of-three")
    with pytest.raises(ValueError):
        wilson(1, 10, confidence=1.0)


def test_rate_str_and_dict() -> None:
    r = proportion(24, 2000)
    assert str(r) == "1.2% (95% CI 0.81–1.8%; 24/2000, wilson)"
    d = r.to_dict()
    assert d["numerator"] == 24 and d["denominator"] == 2000 and d["method"] == "wilson"
    design = Rate(0.0032, 0.002, 0.0061, 63.9, 20000, "mover-jeffreys")
    assert str(design) == "0.32% (95% CI 0.2–0.61%; 63.9/20000, mover-jeffreys)"


@given(st.integers(0, 400), st.integers(1, 400))
def test_intervals_contain_the_estimate(k: int, n: int) -> None:
    k = min(k, n)
    for r in (wilson(k, n), clopper_pearson(k, n), proportion(k, n)):
        assert 0.0 <= r.lower <= r.estimate <= r.upper <= 1.0


def test_z_value() -> None:
    assert z_value(0.95) == pytest.approx(Z95)


def test_cohen_kappa_known_table() -> None:
    # table [[20, 5], [10, 15]]: po = 0.7, pe = 0.5, kappa = 0.4
    a = [1] * 25 + [0] * 25
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    kappa, lo, hi = cohen_kappa(a, b)
    assert kappa == pytest.approx(0.4)
    assert lo < kappa < hi
    assert (kappa - lo) == pytest.approx(hi - kappa)
    assert lo > 0.1 and hi < 0.7
    perfect = cohen_kappa([0, 1, 1, 0], [0, 1, 1, 0])
    assert perfect[0] == pytest.approx(1.0)
    assert all(math.isnan(x) for x in cohen_kappa([1, 1, 1], [1, 1, 1]))
    assert all(math.isnan(x) for x in cohen_kappa([], []))
    with pytest.raises(ValueError):
        cohen_kappa([1, 0], [1])


def test_rogan_gladen_known_and_estimated_accuracy() -> None:
    ap = wilson(30, 200)
    known = rogan_gladen(ap, 0.9, 0.95)
    assert known.estimate == pytest.approx((0.15 + 0.95 - 1) / 0.85)
    assert known.lower == pytest.approx((ap.lower - 0.05) / 0.85)
    assert known.upper == pytest.approx((ap.upper - 0.05) / 0.85)
    est = rogan_gladen(ap, wilson(90, 100), wilson(190, 200))
    assert est.method == "rogan-gladen (delta)"
    assert est.lower < est.estimate < est.upper
    assert est.width > known.width  # uncertainty in Se and Sp widens the interval
    assert rogan_gladen(wilson(0, 200), 0.9, 0.95).lower == 0.0
    with pytest.raises(ValueError):
        rogan_gladen(ap, 0.5, 0.5)


def test_fisher_or_chi2_picks_the_test() -> None:
    small = fisher_or_chi2([[3, 1], [1, 3]])
    assert small.method == "fisher-exact"
    assert small.pvalue == pytest.approx(0.4857142857)
    big = fisher_or_chi2([[30, 10], [10, 30]])
    assert big.method == "chi2"
    assert big.statistic == pytest.approx(20.0)
    assert fisher_or_chi2([[0, 0], [3, 4]]).method.startswith("undefined")
    assert "expected" in fisher_or_chi2([[1, 2, 3], [2, 1, 9]]).method


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.2, math.nan])
    assert out[0] == pytest.approx(0.2) and math.isnan(out[1])


def test_mcnemar_exact_and_asymptotic() -> None:
    exact = mcnemar([[10, 5], [1, 20]])
    assert exact.method == "mcnemar-exact"
    assert exact.pvalue == pytest.approx(2 * 7 / 64)  # 2 P(X <= 1), X ~ Bin(6, 1/2)
    big = mcnemar([[10, 40], [15, 20]])
    assert big.method == "mcnemar-chi2-cc"
    assert big.statistic == pytest.approx((abs(40 - 15) - 1) ** 2 / 55)
    assert mcnemar([[5, 0], [0, 5]]).pvalue == 1.0
