"""Design-based audit estimator: hand-computed values, invariances and interval coverage."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mhsafety.audit.estimate import (
    CategoryEstimate,
    Stratum,
    estimate_category,
    jeffreys_limits,
    mover_ratio,
    mover_total,
    strata_from_frame,
)
from mhsafety.stats import wilson
from mhsafety.taxonomy import Category

IntArray = npt.NDArray[np.int64]

# --------------------------------------------------------------------------- small designs


def rows(stratum: str, n: int, *, flagged: int = 0, risk: int = 0, missed: int = 0) -> pd.DataFrame:
    """``n`` reviewed rows: the first ``flagged`` are flagged; ``risk`` have risk, of which
    the first ``missed`` had no intervention."""
    assert missed <= risk <= n and flagged <= n
    r = np.arange(n)
    return pd.DataFrame(
        {
            "stratum": stratum,
            "flagged": r < flagged,
            "risk": r < risk,
            "intervened": (r >= missed) & (r < risk),
        }
    )


def example() -> tuple[pd.DataFrame, list[Stratum]]:
    """Census stratum of 100 (60 flagged for this category, 40 for others) and a sampled
    stratum of 1000 with 100 reviewed. Flagged: 40 risk, 10 missed. Other census: 2 risk,
    1 missed. Sample: 2 risk, both missed."""
    census = pd.concat(
        [rows("flagged", 60, flagged=60, risk=40, missed=10), rows("flagged", 40, risk=2, missed=1)]
    )
    sample = rows("low", 100, risk=2, missed=2)
    design = [Stratum("flagged", 100, 100, census=True), Stratum("low", 1000, 100)]
    return pd.concat([census, sample], ignore_index=True), design


def test_hand_computed_example() -> None:
    reviewed, design = example()
    est = estimate_category(
        reviewed, design, population_size=1100, flagged_count=60, category=Category.SUICIDE
    )
    counts = (est.flagged, est.reviewed_flagged, est.risk_flagged, est.misses_flagged)
    assert counts == (60, 60, 40, 10)
    assert (est.reviewed_unflagged, est.risk_unflagged_reviewed) == (140, 4)
    assert (est.misses_unflagged_reviewed, est.sampled_units) == (3, 100)

    # the published audit's three denominators
    assert est.flagged_only_lower_bound.estimate == pytest.approx(10 / 1100)
    assert est.flagged_only_lower_bound.upper == pytest.approx(wilson(10, 1100).upper)
    assert est.miss_per_flagged.estimate == pytest.approx(10 / 60)
    assert est.miss_per_flagged_risk.estimate == pytest.approx(10 / 40)

    # Horvitz-Thompson: census counts + N_h / n_h * sample counts
    assert est.total_misses.estimate == pytest.approx(10 + 1 + 1000 * 2 / 100)
    assert est.total_risk.estimate == pytest.approx(40 + 2 + 20)
    assert est.miss_rate.estimate == pytest.approx(31 / 1100)
    assert est.prevalence.estimate == pytest.approx(62 / 1100)
    assert est.miss_per_risk.estimate == pytest.approx(31 / 62)
    assert est.recall.estimate == pytest.approx(40 / 62)
    assert est.precision.estimate == pytest.approx(40 / 60)
    assert est.precision.upper == pytest.approx(wilson(40, 60).upper)

    # MOVER-Jeffreys with one sampled stratum: Jeffreys limits scaled by N sqrt(1 - f)
    lo = stats.beta.ppf(0.025, 2.5, 98.5)
    hi = stats.beta.ppf(0.975, 2.5, 98.5)
    scale = 1000 * math.sqrt(1 - 0.1)
    assert est.total_misses.lower == pytest.approx(31 - scale * (0.02 - lo))
    assert est.total_misses.upper == pytest.approx(31 + scale * (hi - 0.02))
    assert est.miss_rate.upper == pytest.approx(est.total_misses.upper / 1100)
    # recall: monotone transform of the unflagged-risk interval (2 exact + 20 estimated)
    b_lo, b_hi = 2 + 20 - scale * (0.02 - lo), 2 + 20 + scale * (hi - 0.02)
    assert est.recall.lower == pytest.approx(40 / (40 + b_hi))
    assert est.recall.upper == pytest.approx(40 / (40 + b_lo))
    assert est.miss_per_risk.lower < 31 / 62 < est.miss_per_risk.upper
    # the flagged-only figure is a lower bound of the design-based total
    assert est.flagged_only_lower_bound.estimate <= est.miss_rate.estimate

    d = est.to_dict()
    assert d["category"] == "suicide"
    assert d["miss_rate"]["method"] == "mover-jeffreys"
    assert d["total_misses"]["estimate"] == pytest.approx(31)


def test_strata_table_is_accepted() -> None:
    reviewed, design = example()
    table = pd.DataFrame(
        {
            "stratum": [s.name for s in design],
            "population": [s.population for s in design],
            "sampled": [s.sampled for s in design],
            "rate": [1.0, 0.1],
            "census": [s.census for s in design],
        }
    )
    assert strata_from_frame(table) == tuple(design)
    a = estimate_category(reviewed, table, population_size=1100, flagged_count=60)
    b = estimate_category(reviewed, design, population_size=1100, flagged_count=60)
    assert a == b


def test_design_violations_raise() -> None:
    reviewed, design = example()
    kw = {"population_size": 1100, "flagged_count": 60}
    with pytest.raises(ValueError, match="reviewed rows"):
        estimate_category(reviewed.iloc[1:], design, **kw)
    with pytest.raises(ValueError, match="unknown strata"):
        estimate_category(reviewed.replace({"stratum": {"low": "lower"}}), design, **kw)
    with pytest.raises(ValueError, match="incomplete"):
        estimate_category(reviewed, design, population_size=1100, flagged_count=61)
    with pytest.raises(ValueError, match="sum"):
        estimate_category(reviewed, design, population_size=1200, flagged_count=60)
    bad = reviewed.copy()
    bad.loc[bad.index[-1], "flagged"] = True
    with pytest.raises(ValueError, match="census"):
        estimate_category(bad, design, population_size=1100, flagged_count=61)
    with pytest.raises(ValueError, match="census stratum"):
        Stratum("flagged", 100, 90, census=True)
    with pytest.raises(ValueError, match="none reviewed"):
        Stratum("low", 100, 0)
    with pytest.raises(ValueError, match="lacks"):
        estimate_category(reviewed.drop(columns="risk"), design, **kw)


def test_no_risk_anywhere_gives_no_data_ratios() -> None:
    reviewed = pd.concat([rows("flagged", 20, flagged=20), rows("low", 50)], ignore_index=True)
    design = [Stratum("flagged", 20, 20, census=True), Stratum("low", 500, 50)]
    est = estimate_category(reviewed, design, population_size=520, flagged_count=20)
    assert est.total_risk.estimate == 0.0
    assert est.total_risk.upper > 0.0  # nothing seen in the sample is not nothing there
    assert est.miss_rate.lower == 0.0 and est.miss_rate.upper > 0.0
    assert math.isnan(est.miss_per_risk.estimate)
    assert (est.miss_per_risk.lower, est.miss_per_risk.upper) == (0.0, 1.0)
    assert est.miss_per_flagged_risk.method == "no-data"
    assert est.flagged_only_lower_bound.method == "rule-of-three"


# --------------------------------------------------------------------------- properties


@st.composite
def designs(draw: st.DrawFn, census_only: bool = False) -> tuple[pd.DataFrame, list[Stratum], int]:
    n_census = draw(st.integers(0, 40))
    flagged = draw(st.integers(0, n_census))
    frames = [
        pd.DataFrame(
            {
                "stratum": "flagged",
                "flagged": np.arange(n_census) < flagged,
                "risk": draw(st.lists(st.booleans(), min_size=n_census, max_size=n_census)),
                "intervened": draw(st.lists(st.booleans(), min_size=n_census, max_size=n_census)),
            }
        )
    ]
    design = [Stratum("flagged", n_census, n_census, census=True)]
    for h in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 30))
        pop = n if census_only else draw(st.integers(n, 10 * n))
        frames.append(
            pd.DataFrame(
                {
                    "stratum": f"band{h}",
                    "flagged": False,
                    "risk": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
                    "intervened": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
                }
            )
        )
        design.append(Stratum(f"band{h}", pop, n, census=census_only))
    reviewed = pd.concat(frames, ignore_index=True)
    labels = ["flagged", "risk", "intervened"]
    reviewed[labels] = reviewed[labels].astype(bool)
    return reviewed, design, flagged


def _run(reviewed: pd.DataFrame, design: list[Stratum], flagged: int) -> CategoryEstimate:
    return estimate_category(
        reviewed,
        design,
        population_size=sum(s.population for s in design),
        flagged_count=flagged,
    )


@settings(max_examples=60, deadline=None)
@given(designs(), st.randoms(use_true_random=False))
def test_estimates_do_not_depend_on_row_order(
    case: tuple[pd.DataFrame, list[Stratum], int], rnd: random.Random
) -> None:
    reviewed, design, flagged = case
    order = list(range(len(reviewed)))
    rnd.shuffle(order)
    shuffled = reviewed.iloc[order].reset_index(drop=True)
    a, b = _run(reviewed, design, flagged), _run(shuffled, design, flagged)
    assert _same_with_nan(a.to_dict(), b.to_dict())


def _same_with_nan(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_with_nan(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


@settings(max_examples=60, deadline=None)
@given(designs(census_only=True))
def test_census_only_design_has_no_sampling_uncertainty(
    case: tuple[pd.DataFrame, list[Stratum], int],
) -> None:
    reviewed, design, flagged = case
    est = _run(reviewed, design, flagged)
    for total in (est.total_misses, est.total_risk):
        assert total.lower == total.estimate == total.upper
    for rate in (est.miss_rate, est.prevalence):
        assert rate.lower == rate.estimate == rate.upper
    for rate in (est.miss_per_risk, est.recall):
        if rate.has_data:
            assert rate.lower == pytest.approx(rate.estimate, abs=1e-12)
            assert rate.upper == pytest.approx(rate.estimate, abs=1e-12)
    # a census counts exactly: HT totals are the plain counts
    assert est.total_misses.estimate == (reviewed.risk & ~reviewed.intervened).sum()


@settings(max_examples=60, deadline=None)
@given(designs())
def test_intervals_are_ordered_and_bounded(case: tuple[pd.DataFrame, list[Stratum], int]) -> None:
    reviewed, design, flagged = case
    est = _run(reviewed, design, flagged)
    seen_misses = int((reviewed.risk & ~reviewed.intervened).sum())
    assert seen_misses <= est.total_misses.lower <= est.total_misses.estimate
    assert est.total_misses.estimate <= est.total_misses.upper <= est.population
    for rate in (est.miss_rate, est.prevalence, est.recall, est.miss_per_risk, est.precision):
        assert 0.0 <= rate.lower <= rate.upper <= 1.0
        if rate.has_data:
            assert rate.lower - 1e-12 <= rate.estimate <= rate.upper + 1e-12
    assert est.flagged_only_lower_bound.estimate <= est.miss_rate.estimate + 1e-15


def test_mover_ratio_edge_cases() -> None:
    theta, lo, hi = mover_ratio(0.0, 0.0, 5.0, 10.0, 6.0, 14.0)
    assert theta == 0.0 and lo == 0.0 and 0.0 < hi < 1.0
    theta, lo, hi = mover_ratio(10.0, 6.0, 14.0, 0.0, 0.0, 5.0)
    assert theta == 1.0 and hi == 1.0 and 0.0 < lo < 1.0
    theta, lo, hi = mover_ratio(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert math.isnan(float(theta)) and (lo, hi) == (0.0, 1.0)
    # exact numerator: monotone transform of the other interval
    theta, lo, hi = mover_ratio(40.0, 40.0, 40.0, 20.0, 8.0, 45.0)
    assert lo == pytest.approx(40 / 85) and hi == pytest.approx(40 / 48)


def test_jeffreys_limits_known_values() -> None:
    lo, hi = jeffreys_limits(np.array([0, 3, 10]), np.array([10, 10, 10]))
    assert lo[0] == 0.0 and hi[2] == 1.0
    assert hi[0] == pytest.approx(stats.beta.ppf(0.975, 0.5, 10.5))
    assert (lo[1], hi[1]) == (
        pytest.approx(stats.beta.ppf(0.025, 3.5, 7.5)),
        pytest.approx(stats.beta.ppf(0.975, 3.5, 7.5)),
    )


# --------------------------------------------------------------------------- coverage


@dataclass(frozen=True)
class Audits:
    """Simulated audits: per-stratum counts (column 0 = census stratum) and truths."""

    n: IntArray
    population: IntArray
    misses: IntArray  # misses seen per stratum
    helped: IntArray  # risk with intervention seen per stratum
    unflagged_risk: IntArray  # risk not flagged for the category, seen per stratum
    true_positives: IntArray
    true_misses: IntArray
    true_risk: IntArray


def simulate_audits(
    rng: np.random.Generator,
    count: int,
    bands: tuple[tuple[float, float, float], ...],
    n_units: int = 20_000,
) -> Audits:
    """Finite populations and stratified reviews, drawn per simulated audit.

    Per audit: prevalence ~ U(1%, 3%); screen recall ~ U(0.75, 0.85) and precision
    ~ U(0.65, 0.75); 2% of the unflagged are flagged for another category (census,
    carrying 10% of the unflagged risk); the rest split into ``bands`` of
    (population share, share of unflagged risk, sampling fraction); the system intervenes
    on 70% of flagged and 20% of unflagged risk. Samples are hypergeometric draws.
    """
    pop_share = np.array([b[0] for b in bands])
    risk_share = np.array([b[1] for b in bands])
    fraction = np.array([b[2] for b in bands])
    risk = rng.binomial(n_units, rng.uniform(0.01, 0.03, count))
    tp = rng.binomial(risk, rng.uniform(0.75, 0.85, count))
    precision = rng.uniform(0.65, 0.75, count)
    flagged = tp + rng.poisson(tp * (1 - precision) / precision)
    other = rng.binomial(n_units - flagged, 0.02)
    risk_other = rng.binomial(risk - tp, 0.10)
    risk_band = rng.multinomial(risk - tp - risk_other, risk_share)
    rest = n_units - flagged - other
    pop_band = np.floor(rest[:, None] * pop_share).astype(np.int64)
    pop_band[:, -1] = rest - pop_band[:, :-1].sum(axis=1)
    n_band = np.maximum(np.round(pop_band * fraction).astype(np.int64), 2)
    helped_f, helped_o = rng.binomial(tp, 0.7), rng.binomial(risk_other, 0.2)
    helped_band = rng.binomial(risk_band, 0.2)
    missed_band = risk_band - helped_band
    seen_missed = rng.hypergeometric(missed_band, pop_band - missed_band, n_band)
    seen_helped = rng.hypergeometric(
        helped_band, pop_band - missed_band - helped_band, n_band - seen_missed
    )
    census = (flagged + other)[:, None]
    true_misses = tp - helped_f + risk_other - helped_o + missed_band.sum(axis=1)
    return Audits(
        n=np.concatenate([census, n_band], axis=1),
        population=np.concatenate([census, pop_band], axis=1),
        misses=np.concatenate([(tp - helped_f + risk_other - helped_o)[:, None], seen_missed], 1),
        helped=np.concatenate([(helped_f + helped_o)[:, None], seen_helped], axis=1),
        unflagged_risk=np.concatenate([risk_other[:, None], seen_missed + seen_helped], axis=1),
        true_positives=tp,
        true_misses=true_misses,
        true_risk=risk,
    )


THREE_BANDS = ((0.15, 0.6, 0.12), (0.35, 0.3, 0.05), (0.5, 0.1, 0.03))  # ~5% of unflagged
TWO_BANDS = ((0.3, 0.7, 0.10), (0.7, 0.3, 0.02))  # the default plan's 10% / 2% bands


@dataclass(frozen=True)
class Coverage:
    miss_rate: float
    miss_rate_upper_error: float  # truth above the upper limit (harm understated)
    miss_rate_lower_error: float  # truth below the lower limit
    recall: float
    recall_lower_error: float  # truth below the lower limit (screen overstated)
    recall_upper_error: float
    miss_per_risk: float


def coverage(a: Audits) -> Coverage:
    """Run the estimator's interval code on every simulated audit at once."""
    m, m_lo, m_hi = mover_total(a.misses, a.n, a.population)
    b, b_lo, b_hi = mover_total(a.unflagged_risk, a.n, a.population)
    tp = a.true_positives.astype(np.float64)
    _, r_lo, r_hi = mover_ratio(tp, tp, tp, b, b_lo, b_hi)
    h, h_lo, h_hi = mover_total(a.helped, a.n, a.population)
    _, t_lo, t_hi = mover_ratio(m, m_lo, m_hi, h, h_lo, h_hi)
    recall = a.true_positives / a.true_risk
    theta = a.true_misses / a.true_risk
    return Coverage(
        miss_rate=float(np.mean((m_lo <= a.true_misses) & (a.true_misses <= m_hi))),
        miss_rate_upper_error=float(np.mean(a.true_misses > m_hi)),
        miss_rate_lower_error=float(np.mean(a.true_misses < m_lo)),
        recall=float(np.mean((r_lo <= recall) & (recall <= r_hi))),
        recall_lower_error=float(np.mean(recall < r_lo)),
        recall_upper_error=float(np.mean(recall > r_hi)),
        miss_per_risk=float(np.mean((t_lo <= theta) & (theta <= t_hi))),
    )


@pytest.mark.parametrize(("bands", "seed"), [(THREE_BANDS, 20260105), (TWO_BANDS, 20260106)])
def test_intervals_reach_nominal_coverage_in_simulated_audits(
    bands: tuple[tuple[float, float, float], ...], seed: int
) -> None:
    audits = simulate_audits(np.random.default_rng(seed), 4000, bands)
    # the sample sees few events: that is the rare-event regime the intervals must handle
    assert 2.0 < audits.misses[:, 1:].sum(axis=1).mean() < 8.0
    cov = coverage(audits)
    print(f"\ncoverage {bands}: {cov}")
    assert 0.93 <= cov.miss_rate <= 0.97
    assert 0.93 <= cov.recall <= 0.97
    # conservative in the safety direction: misses and recall are not under/overstated
    assert cov.miss_rate_upper_error <= 0.025
    assert cov.recall_lower_error <= 0.025


def test_miss_per_confirmed_risk_coverage_is_at_least_nominal() -> None:
    audits = simulate_audits(np.random.default_rng(20260107), 4000, THREE_BANDS)
    cov = coverage(audits)
    print(f"\nmiss-per-confirmed-risk coverage: {cov.miss_per_risk:.3f} (conservative)")
    assert cov.miss_per_risk >= 0.95


def test_estimator_matches_the_vectorised_core_on_simulated_audits() -> None:
    """The DataFrame path and the vectorised path used for coverage give the same numbers."""
    rng = np.random.default_rng(7)
    a = simulate_audits(rng, 5, THREE_BANDS)
    for s in range(5):
        frames, design = [], []
        names = ["flagged"] + [f"band{h}" for h in range(a.n.shape[1] - 1)]
        for h, name in enumerate(names):
            n, missed, helped = int(a.n[s, h]), int(a.misses[s, h]), int(a.helped[s, h])
            unflagged_risk = int(a.unflagged_risk[s, h])
            flagged = int(a.true_positives[s]) if h == 0 else 0
            frame = rows(name, n, risk=missed + helped, missed=missed)
            # flag every census risk unit that is not unflagged risk (true positives)
            risk_idx = np.flatnonzero(frame.risk.to_numpy())
            frame.loc[risk_idx[: missed + helped - unflagged_risk], "flagged"] = True
            frames.append(frame)
            design.append(Stratum(name, int(a.population[s, h]), n, census=h == 0))
            assert h > 0 or int(frame.flagged.sum()) == flagged
        reviewed = pd.concat(frames, ignore_index=True)
        flag_total = int(reviewed.flagged.sum())
        est = estimate_category(
            reviewed,
            design,
            population_size=int(a.population[s].sum()),
            flagged_count=flag_total,
        )
        m, m_lo, m_hi = mover_total(a.misses[s], a.n[s], a.population[s])
        assert (est.total_misses.estimate, est.total_misses.lower, est.total_misses.upper) == (
            pytest.approx(float(m)),
            pytest.approx(float(m_lo)),
            pytest.approx(float(m_hi)),
        )
        b, b_lo, b_hi = mover_total(a.unflagged_risk[s], a.n[s], a.population[s])
        tp = float(est.risk_flagged)
        _, r_lo, r_hi = mover_ratio(tp, tp, tp, b, b_lo, b_hi)
        assert (est.recall.lower, est.recall.upper) == (
            pytest.approx(float(r_lo)),
            pytest.approx(float(r_hi)),
        )
