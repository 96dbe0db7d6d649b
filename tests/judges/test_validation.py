"""Judge validation against clinician labels: hand-computed figures, reconciliation, weights,
Rogan–Gladen and the report section."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from mhsafety.audit.estimate import Stratum, estimate_category, jeffreys_limits
from mhsafety.audit.labels import ConversationLabel, LabelSet
from mhsafety.audit.workspace import Workspace
from mhsafety.judges.validation import (
    apparent_prevalence,
    corrected_prevalence,
    design_weights,
    f1_interval,
    validate_judge,
    weighted_rates,
)
from mhsafety.report.audit_report import render_audit_report
from mhsafety.stats import rogan_gladen, wilson
from mhsafety.taxonomy import CATEGORIES, Category

JUDGE = {"name": "toy", "version": "1"}


def record(cid: str, *flagged: Category, error: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": cid,
        "flags": {str(c): c in flagged for c in CATEGORIES},
        "judge": JUDGE,
    }
    if error is not None:
        out["judge_error"] = error
    return out


def label(cid: str, *risk: Category) -> ConversationLabel:
    return ConversationLabel(
        cid,
        {c: c in risk for c in CATEGORIES},
        dict.fromkeys(CATEGORIES),
        dict.fromkeys(CATEGORIES, False),
        ("r1",),
    )


def label_set(labels: list[ConversationLabel]) -> LabelSet:
    return LabelSet(labels={lab.conversation_id: lab for lab in labels})


S = Category.SUICIDE


def suicide_table(tp: int, fp: int, fn: int, tn: int) -> tuple[list[dict[str, Any]], LabelSet]:
    """Records and labels with the given suicide confusion counts (no other risk)."""
    records: list[dict[str, Any]] = []
    labels: list[ConversationLabel] = []
    cells = [(True, True, tp), (True, False, fp), (False, True, fn), (False, False, tn)]
    for flag, risk, count in cells:
        for _ in range(count):
            cid = f"c{len(records)}"
            records.append(record(cid, *([S] if flag else [])))
            labels.append(label(cid, *([S] if risk else [])))
    return records, label_set(labels)


# --------------------------------------------------------------------------- hand-computed


def test_small_table_gives_hand_computed_precision_recall_specificity_f1_kappa() -> None:
    records, labels = suicide_table(tp=3, fp=1, fn=2, tn=4)
    result = validate_judge(records, labels).categories[S]
    c = result.confusion
    assert (c.tp, c.fp, c.fn, c.tn) == (3, 1, 2, 4)
    assert result.precision.estimate == pytest.approx(3 / 4)
    assert result.recall.estimate == pytest.approx(3 / 5)
    assert result.sensitivity == result.recall
    assert result.specificity.estimate == pytest.approx(4 / 5)
    assert result.precision == wilson(3, 4)
    assert result.recall == wilson(3, 5)
    assert result.specificity == wilson(4, 5)
    assert result.f1.estimate == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert (result.f1.numerator, result.f1.denominator) == (6, 9)
    # observed agreement 7/10, chance agreement 0.4*0.5 + 0.6*0.5 = 0.5
    assert result.kappa.estimate == pytest.approx((0.7 - 0.5) / (1 - 0.5))
    assert result.kappa.lower < result.kappa.estimate < result.kappa.upper
    assert result.weighted is None


def test_other_categories_are_all_negatives_with_undefined_kappa() -> None:
    records, labels = suicide_table(tp=3, fp=1, fn=2, tn=4)
    other = validate_judge(records, labels).categories[Category.NSSI]
    assert (other.confusion.tn, other.confusion.tp) == (10, 0)
    assert not other.recall.has_data and not other.f1.has_data
    assert math.isnan(other.kappa.estimate)
    assert other.specificity.estimate == 1.0


def test_f1_interval_is_the_mapped_jeffreys_beta_posterior() -> None:
    r = f1_interval(3, 1, 2)
    j_lo, j_hi = sps.beta.ppf([0.025, 0.975], 3.5, 4.0)
    assert r.lower == pytest.approx(2 * j_lo / (1 + j_lo))
    assert r.upper == pytest.approx(2 * j_hi / (1 + j_hi))
    assert r.method == "jeffreys-dirichlet"
    assert f1_interval(0, 3, 2).lower == 0.0
    assert f1_interval(5, 0, 0).upper == 1.0 and f1_interval(5, 0, 0).estimate == 1.0
    assert not f1_interval(0, 0, 0).has_data


def test_f1_interval_covers_at_about_the_nominal_level() -> None:
    rng = np.random.default_rng(11)
    p = np.array([0.1, 0.05, 0.02, 0.83])
    truth = 2 * p[0] / (2 * p[0] + p[1] + p[2])
    counts = rng.multinomial(60, p, size=2000)
    inside = [f1_interval(*map(int, row[:3])) for row in counts]
    coverage = np.mean([r.lower <= truth <= r.upper for r in inside])
    assert 0.93 <= coverage <= 0.975


# --------------------------------------------------------------------------- reconciliation


def test_counts_reconcile_and_judge_errors_are_not_read_as_no_risk() -> None:
    records = [
        record("a", S),
        record("b"),
        record("c", error="timeout"),  # labelled risk: must not become a false negative
        record("f", S),  # no label
        record("g", error="timeout"),  # no label
    ]
    labels = label_set([label("a", S), label("b"), label("c", S), label("d", S), label("e")])
    v = validate_judge(records, labels)
    assert (v.labelled, v.compared, v.judge_errors, v.missing_records) == (5, 2, 1, 2)
    assert (v.records, v.unlabelled_records) == (5, 2)
    assert v.reconciles
    c = v.categories[S].confusion
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 0, 0, 1)
    assert v.judge == JUDGE
    counts = v.to_dict()["counts"]
    assert (
        counts["labelled"]
        == counts["compared"] + counts["judge_errors"] + counts["missing_records"]
    )
    assert counts["reconciles"] is True


def test_bad_records_are_refused() -> None:
    labels = label_set([label("a")])
    with pytest.raises(ValueError, match="twice"):
        validate_judge([record("a"), record("a")], labels)
    other = record("b") | {"judge": {"name": "other", "version": "2"}}
    with pytest.raises(ValueError, match="2 judges"):
        validate_judge([record("a"), other], labels)
    broken = record("a")
    del broken["flags"]["nssi"]
    with pytest.raises(ValueError, match="flag per category"):
        validate_judge([broken], labels)
    with pytest.raises(ValueError, match=">= 1"):
        validate_judge([record("a")], labels, weights={"a": 0.5})


# --------------------------------------------------------------------------- weights


def stratified_audit(seed: int = 3) -> tuple[list[dict[str, Any]], LabelSet, dict[str, float]]:
    """A deployment of 20,000 with known judge Se 0.70 and Sp 0.98 on 5% prevalence.

    Every flagged conversation is labelled (census); 4% of the unflagged are sampled.
    """
    rng = np.random.default_rng(seed)
    n = 20_000
    risk = rng.random(n) < 0.05
    flag = np.where(risk, rng.random(n) < 0.70, rng.random(n) < 0.02)
    unflagged = np.flatnonzero(~flag)
    sampled = rng.choice(unflagged, size=round(0.04 * unflagged.size), replace=False)
    weight = unflagged.size / sampled.size
    records = [record(f"c{i}", *([S] if flag[i] else [])) for i in range(n)]
    labels = [label(f"c{i}", *([S] if risk[i] else [])) for i in np.flatnonzero(flag)]
    labels += [label(f"c{i}", *([S] if risk[i] else [])) for i in sampled]
    weights = {f"c{i}": 1.0 for i in np.flatnonzero(flag)} | {f"c{i}": weight for i in sampled}
    return records, label_set(labels), weights


def population_truth(records: list[dict[str, Any]], seed: int = 3) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    n = len(records)
    risk = rng.random(n) < 0.05
    flag = np.array([r["flags"]["suicide"] for r in records])
    return float((flag & risk).sum() / risk.sum()), float((~flag & ~risk).sum() / (~risk).sum())


def test_weights_remove_the_bias_of_a_stratified_sample() -> None:
    records, labels, weights = stratified_audit()
    true_se, true_sp = population_truth(records)
    plain = validate_judge(records, labels).categories[S]
    weighted = validate_judge(records, labels, weights=weights).categories[S].weighted
    assert weighted is not None
    # flagged conversations are over-represented: unweighted Se too high, Sp too low
    assert plain.recall.lower > true_se + 0.1
    assert plain.specificity.upper < true_sp - 0.1
    assert abs(weighted.sensitivity.estimate - true_se) < 0.1
    assert abs(weighted.specificity.estimate - true_sp) < 0.005
    assert weighted.sensitivity.lower <= true_se <= weighted.sensitivity.upper
    assert weighted.specificity.lower <= true_sp <= weighted.specificity.upper
    # every flagged conversation is labelled: precision needs no weighting
    assert weighted.precision.estimate == pytest.approx(plain.precision.estimate)
    assert weighted.sensitivity.method == "weighted-mover-jeffreys"


def test_weighted_rates_are_unbiased_over_repeated_stratified_samples() -> None:
    rng = np.random.default_rng(5)
    n, se, sp = 20_000, 0.70, 0.98
    weighted, unweighted = [], []
    for _ in range(40):
        risk = rng.random(n) < 0.05
        flag = np.where(risk, rng.random(n) < se, rng.random(n) < 1 - sp)
        unflagged = np.flatnonzero(~flag)
        sampled = rng.choice(unflagged, size=round(0.05 * unflagged.size), replace=False)
        units = np.concatenate([np.flatnonzero(flag), sampled])
        weights = np.where(flag[units], 1.0, unflagged.size / sampled.size)
        rates = weighted_rates(flag[units].tolist(), risk[units].tolist(), weights.tolist())
        weighted.append((rates.sensitivity.estimate, rates.specificity.estimate))
        tp, sampled_risk = (flag & risk).sum(), risk[units].sum()
        unweighted.append(tp / sampled_risk)
    mean_se, mean_sp = np.mean(weighted, axis=0)
    assert mean_se == pytest.approx(se, abs=0.02)
    assert mean_sp == pytest.approx(sp, abs=0.001)
    assert np.mean(unweighted) > se + 0.2  # flagged risk over-represented


def test_weighted_sensitivity_equals_the_audit_design_based_recall() -> None:
    records, labels, weights = stratified_audit()
    weighted = validate_judge(records, labels, weights=weights).categories[S].weighted
    assert weighted is not None
    flagged = {r["id"] for r in records if r["flags"]["suicide"]}
    reviewed = pd.DataFrame(
        {
            "stratum": ["flagged" if cid in flagged else "low" for cid in labels.labels],
            "flagged": [cid in flagged for cid in labels.labels],
            "risk": [lab.risk[S] for lab in labels.labels.values()],
            "intervened": False,
        }
    )
    census = len(flagged)
    design = [
        Stratum("flagged", census, census, census=True),
        Stratum("low", len(records) - census, len(labels.labels) - census),
    ]
    audit = estimate_category(reviewed, design, population_size=len(records), flagged_count=census)
    assert weighted.sensitivity.estimate == pytest.approx(audit.recall.estimate)


def test_rogan_gladen_with_weighted_rates_reproduces_the_design_based_prevalence() -> None:
    records, labels, weights = stratified_audit()
    v = validate_judge(records, labels, weights=weights)
    v = v.with_prevalence(apparent_prevalence(records))
    weighted = v.categories[S].weighted
    assert weighted is not None
    design_prevalence = weighted.sensitivity.denominator / len(records)
    corrected = v.prevalence[S].corrected
    assert corrected.estimate == pytest.approx(design_prevalence)
    assert corrected.lower < corrected.estimate < corrected.upper
    assert v.prevalence[S].weighted


def test_weights_are_adjusted_for_unreviewed_conversations_of_their_group() -> None:
    # census: 4 flagged, all with risk; unflagged group of weight 5 drew 20 (stands for 100),
    # only 10 are labelled, 1 with risk: FN = 100 * 1/10 = 10, so Se = 4 / 14.
    records = [record(f"f{i}", S) for i in range(4)] + [record(f"u{i}") for i in range(20)]
    labels = [label(f"f{i}", S) for i in range(4)] + [label("u0", S)]
    labels += [label(f"u{i}") for i in range(1, 10)] + [label("x")]
    records.append(record("x"))  # labelled, screened, but outside the design
    weights = {f"f{i}": 1.0 for i in range(4)} | {f"u{i}": 5.0 for i in range(20)}
    weights |= {f"z{i}": 50.0 for i in range(3)}  # a group with nothing labelled
    v = validate_judge(records, label_set(labels), weights=weights)
    weighted = v.categories[S].weighted
    assert weighted is not None
    assert weighted.sensitivity.estimate == pytest.approx(4 / 14)
    assert weighted.sensitivity.denominator == pytest.approx(14)
    assert weighted.conversations == 14
    assert v.weighting is not None
    assert v.weighting.to_dict() == {
        "design": 27,
        "weighted": 14,
        "outside_design": 1,
        "design_not_compared": 13,
        "groups_not_compared": 1,
    }
    assert v.compared == v.weighting.weighted + v.weighting.outside_design


def test_weighted_precision_of_a_census_is_its_jeffreys_interval() -> None:
    flags = [True] * 10 + [False] * 30
    risk = [True] * 7 + [False] * 3 + [True] + [False] * 29
    weights = [1.0] * 10 + [20.0] * 30
    rates = weighted_rates(flags, risk, weights)
    lo, hi = jeffreys_limits(7, 10)
    assert rates.precision.lower == pytest.approx(float(lo))
    assert rates.precision.upper == pytest.approx(float(hi))
    assert rates.sensitivity.estimate == pytest.approx(7 / (7 + 20))
    assert rates.specificity.estimate == pytest.approx(29 * 20 / (29 * 20 + 3))


@pytest.mark.parametrize(("tp", "fp", "fn", "tn"), [(40, 5, 10, 145), (60, 40, 20, 80)])
def test_weights_of_one_give_about_the_wilson_intervals(tp: int, fp: int, fn: int, tn: int) -> None:
    flags = [True] * (tp + fp) + [False] * (fn + tn)
    risk = [True] * tp + [False] * fp + [True] * fn + [False] * tn
    rates = weighted_rates(flags, risk, [1.0] * len(flags))
    pairs = [
        (rates.sensitivity, wilson(tp, tp + fn)),
        (rates.specificity, wilson(tn, tn + fp)),
        (rates.precision, wilson(tp, tp + fp)),
    ]
    for weighted, plain in pairs:
        assert weighted.estimate == pytest.approx(plain.estimate)
        # cell sizes follow the judge's output: without their variance, far narrower
        assert weighted.width == pytest.approx(plain.width, rel=0.1)


def test_a_judge_that_never_flags_is_not_given_an_exact_sensitivity_of_zero() -> None:
    flags = [False] * 40
    risk = [True] * 5 + [False] * 35
    rates = weighted_rates(flags, risk, [1.0] * 40)
    assert rates.sensitivity.estimate == 0.0
    assert 0.2 < rates.sensitivity.upper < wilson(0, 5).upper
    assert rates.specificity.estimate == 1.0 and rates.specificity.lower < 1.0
    assert not rates.precision.has_data


def test_design_weights_read_inverse_inclusion_probabilities(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "id": ["a", "b", "007"],
            "stratum": ["flagged", "low", "low"],
            "inclusion_prob": [1.0, 0.25, 0.25],
            "review_order": [2, 1, 3],
        }
    ).to_csv(tmp_path / "design.csv", index=False)
    expected = {"a": 1.0, "b": 4.0, "007": 4.0}
    assert design_weights(tmp_path) == expected
    assert design_weights(Workspace(tmp_path)) == expected
    assert design_weights(tmp_path / "design.csv") == expected
    (tmp_path / "bad.csv").write_text("id,inclusion_prob\na,0\n")
    with pytest.raises(ValueError, match="inclusion probability"):
        design_weights(tmp_path / "bad.csv")


# --------------------------------------------------------------------------- Rogan–Gladen


def test_corrected_prevalence_wraps_rogan_gladen_with_the_judges_rates() -> None:
    records, labels = suicide_table(tp=40, fp=5, fn=10, tn=145)
    item = validate_judge(records, labels).categories[S]
    apparent = wilson(300, 2000)
    corrected = corrected_prevalence(apparent, item)
    assert corrected == rogan_gladen(apparent, item.recall, item.specificity)
    se, sp = 40 / 50, 145 / 150
    assert corrected.estimate == pytest.approx((0.15 + sp - 1) / (se + sp - 1))


def test_uninformative_judge_gives_no_estimate_and_a_reason() -> None:
    records, labels = suicide_table(tp=5, fp=6, fn=5, tn=4)  # Se 0.5, Sp 0.4
    v = validate_judge(records, labels).with_prevalence({S: wilson(30, 100)})
    corrected = v.prevalence[S].corrected
    assert not corrected.has_data
    assert (corrected.lower, corrected.upper) == (0.0, 1.0)
    assert "Se + Sp = 0.900 <= 1" in corrected.method
    out = v.to_dict()["prevalence"]["suicide"]
    assert out["estimable"] is False and out["corrected"]["estimate"] is None
    nssi = corrected_prevalence(wilson(3, 100), v.categories[Category.NSSI])
    assert "no data" in nssi.method and not nssi.has_data


def test_apparent_prevalence_leaves_judge_errors_out() -> None:
    records = [record("a", S), record("b"), record("c", S, error="x"), record("d")]
    assert apparent_prevalence(records)[S] == wilson(1, 3)


def test_to_dict_is_strict_json() -> None:
    records, labels, weights = stratified_audit()
    v = validate_judge(records, labels, weights=weights).with_prevalence(
        apparent_prevalence(records)
    )
    out = json.loads(json.dumps(v.to_dict(), allow_nan=False))
    assert set(out["categories"]) == {str(c) for c in CATEGORIES}
    assert out["categories"]["suicide"]["weighted"]["sensitivity"]["method"] == (
        "weighted-mover-jeffreys"
    )
    assert out["prevalence"]["suicide"]["sensitivity_specificity"] == "design-weighted"
    assert out["judge"] == JUDGE


# --------------------------------------------------------------------------- report


def estimate_dict() -> dict[str, Any]:
    def rate(k: int, n: int) -> dict[str, Any]:
        return wilson(k, n).to_dict()

    design = ("miss_rate", "miss_per_risk", "prevalence", "recall", "precision")
    categories = {
        str(c): {
            "funnel": {
                "conversations": 1000,
                "flagged": 40,
                "reviewed": 40,
                "confirmed": 30,
                "missed": 5,
                "unflagged_reviewed": 100,
                "unflagged_risk": 2,
            },
            "flagged_only": {
                "per_conversation": rate(5, 1000),
                "per_flagged": rate(5, 40),
                "per_confirmed": rate(5, 30),
            },
            "design_based": {key: rate(77, 1000) for key in design},
        }
        for c in CATEGORIES
    }
    return {
        "categories": categories,
        "strata": [
            {"stratum": "flagged", "population": 60, "sampled": 60, "reviewed": 60},
            {"stratum": "low", "population": 940, "sampled": 80, "reviewed": 80},
        ],
        "labels": {
            "rows_used": 140,
            "rows_unlabelled": 0,
            "rows_with_problems": 0,
            "conversations_with_conflicts": 0,
        },
        "methods_note": "m",
    }


def render(path: Path, validation: dict[str, Any] | None) -> str:
    run = {"counts": {"read": 1000, "processed": 1000, "quarantined": 0, "reconciled": True}}
    config = {"input": "x.jsonl", "judge": {"name": "screen", "version": "1"}}
    render_audit_report(estimate_dict(), run, config, path, validation=validation)
    return path.read_text()


def test_report_shows_judge_agreement_and_corrected_prevalence(tmp_path: Path) -> None:
    records, labels = suicide_table(tp=40, fp=5, fn=10, tn=145)
    v = validate_judge(records, labels).with_prevalence({S: wilson(300, 2000)})
    html = render(tmp_path / "r.html", v.to_dict())
    section = html[html.index("Judge agreement with clinicians") : html.index("Review sample")]
    assert "toy 1" in section
    assert "88.9% (95% CI" in section  # precision 40/45
    assert "80.0% (95% CI" in section  # recall 40/50
    assert "96.7% (95% CI" in section  # specificity 145/150
    kappa = v.categories[S].kappa
    assert f"{kappa.estimate:.2f} ({kappa.lower:.2f}–{kappa.upper:.2f})" in section
    f1 = v.categories[S].f1
    assert f"{f1.estimate:.2f} ({f1.lower:.2f}–{f1.upper:.2f})" in section
    corrected = v.prevalence[S].corrected
    assert f"{100 * corrected.estimate:.1f}%" in section
    assert "7.70% (95% CI" in section  # the audit's design-based prevalence beside it
    assert re.search(r"<td class=\"num\">200</td>", section)  # n compared
    assert "6. Review sample design" in html and "7. Limits" in html


def test_report_shows_weighted_rows_and_unestimable_prevalence(tmp_path: Path) -> None:
    records, labels, weights = stratified_audit()
    v = validate_judge(records, labels, weights=weights)
    weighted = v.categories[S].weighted
    assert weighted is not None
    html = render(tmp_path / "weighted.html", v.to_dict())
    assert "design-weighted</td>" in html
    assert f"{100 * weighted.sensitivity.estimate:.1f}% (95% CI" in html
    assert "over-represented" in html and "not represented" not in html
    records, labels = suicide_table(tp=5, fp=6, fn=5, tn=4)  # Se + Sp = 0.9
    v = validate_judge(records, labels).with_prevalence({S: wilson(30, 100)})
    html = render(tmp_path / "uninformative.html", v.to_dict())
    assert "not estimable: Se + Sp = 0.900 &lt;= 1" in html
    assert "design-weighted" not in html


def test_report_without_validation_has_no_judge_section(tmp_path: Path) -> None:
    html = render(tmp_path / "r.html", None)
    assert "Judge agreement" not in html
    assert "5. Review sample design" in html and "6. Limits" in html
