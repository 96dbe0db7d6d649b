"""Bench results and report: hand-made frames with known counts."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from mhsafety.bench.report import render_bench_report
from mhsafety.bench.results import (
    ALL_DOMAINS,
    ALL_SETS,
    BenchResults,
    Comparison,
    summarise,
    write_csv,
)
from mhsafety.stats import holm, mcnemar, wilson

DOMAIN_OF = {
    "suicide": "suicide/NSSI",
    "nssi": "suicide/NSSI",
    "eating_disorder": "eating disorder",
    "substance": "substance use",
}


def row(
    system: str,
    item: str,
    label: str,
    *,
    epoch: int = 0,
    set_id: str = "persona-scripts",
    scoring: str = "harmful_any",
    category: str = "suicide",
    risk_level: str | None = None,
    version: str = "1.0.0",
) -> dict[str, Any]:
    """One sample row as the bench frame holds it."""
    return {
        "set": set_id,
        "set_version": version,
        "scoring": scoring,
        "system": system,
        "model": "mhsafety/local" if system == "local" else "mhsafety/guarded",
        "item_id": item,
        "epoch": epoch,
        "category": category,
        "domain": DOMAIN_OF[category],
        "risk_level": risk_level,
        "label": label,
        "reason": "",
    }


def labels(system: str, counts: dict[str, int], **kwargs: Any) -> list[dict[str, Any]]:
    """Rows with the given label counts, items numbered in order."""
    prefix = kwargs.pop("prefix", "i")
    out = []
    number = 0
    for label, n in counts.items():
        for _ in range(n):
            out.append(row(system, f"{prefix}{number}", label, **kwargs))
            number += 1
    return out


def graded(system: str, item: str, level: str, label: str, **kwargs: Any) -> dict[str, Any]:
    return row(
        system,
        item,
        label,
        set_id="graded-queries",
        scoring="graded_direct",
        risk_level=level,
        **kwargs,
    )


# --------------------------------------------------------------------------- rates


def test_harmful_rate_is_k_over_labelled_samples_with_wilson_interval() -> None:
    frame = pd.DataFrame(labels("local", {"harmful": 3, "safe": 6, "judge_error": 1}))
    results = summarise(frame)
    cell = results.rate("persona-scripts", "suicide/NSSI", "local")
    assert (cell.harmful.numerator, cell.harmful.denominator) == (3, 9)
    assert cell.harmful == wilson(3, 9)
    assert cell.judge_errors == 1
    assert cell.samples == 10
    assert cell.over_refusal is None  # not a graded set
    assert cell.counts == {
        "harmful": 3,
        "safe": 6,
        "over_refusal": 0,
        "judge_error": 1,
        "sample_error": 0,
    }


def test_judge_errors_never_count_as_verdicts() -> None:
    frame = pd.DataFrame(
        labels("local", {"judge_error": 4})
        + labels("local", {"harmful": 1, "safe": 1}, category="substance", prefix="s")
    )
    results = summarise(frame)
    errors_only = results.rate("persona-scripts", "suicide/NSSI", "local")
    assert errors_only.harmful.denominator == 0
    assert not errors_only.harmful.has_data
    assert errors_only.judge_errors == 4
    overall = results.rate("persona-scripts", ALL_DOMAINS, "local")
    assert (overall.harmful.numerator, overall.harmful.denominator) == (1, 2)
    assert overall.judge_errors == 4


def test_confidence_is_passed_to_the_intervals() -> None:
    frame = pd.DataFrame(labels("local", {"harmful": 2, "safe": 8}))
    cell = summarise(frame, confidence=0.9).rate("persona-scripts", "suicide/NSSI", "local")
    assert cell.harmful == wilson(2, 10, 0.9)


def mixed_frame() -> pd.DataFrame:
    rows = (
        labels("local", {"harmful": 5, "safe": 3, "judge_error": 2})
        + labels("local", {"harmful": 1, "safe": 4}, category="eating_disorder", prefix="e")
        + labels("local+guard", {"harmful": 1, "safe": 8, "judge_error": 1})
        + labels("local+guard", {"safe": 5}, category="eating_disorder", prefix="e")
        + labels(
            "local",
            {"harmful": 2, "safe": 2},
            set_id="refusal-robustness",
            scoring="refusal_holds",
            category="substance",
            prefix="r",
        )
        + [
            graded("local", "g1", "very_low", "over_refusal"),
            graded("local", "g2", "very_low", "safe"),
            graded("local", "g3", "high", "harmful"),
            graded("local", "g4", "very_high", "judge_error"),
        ]
    )
    return pd.DataFrame(rows)


def test_counts_reconcile_with_rows_read() -> None:
    frame = mixed_frame()
    results = summarise(frame)
    assert results.rows_in == len(frame) == 38
    assert sum(int(c.harmful.denominator) + c.judge_errors for c in results.cells) == 38
    assert results.reconciled
    # each set total is the sum of its cells, and each system total the sum of its sets
    for info in results.sets:
        for system in {c.system for c in results.cells if c.set == info.id}:
            cells = [c for c in results.cells if c.set == info.id and c.system == system]
            total = results.rate(info.id, ALL_DOMAINS, system)
            assert total.samples == sum(c.samples for c in cells)
            assert total.harmful.numerator == sum(c.harmful.numerator for c in cells)
    assert [(r.set, r.system) for r in results.overall] == [
        ("persona-scripts", "local"),
        ("persona-scripts", "local+guard"),
        ("refusal-robustness", "local"),
        ("graded-queries", "local"),
        (ALL_SETS, "local"),
        (ALL_SETS, "local+guard"),
    ]
    everything = results.rate(ALL_SETS, ALL_DOMAINS, "local")
    assert everything.samples == 10 + 5 + 4 + 4
    assert (everything.harmful.numerator, everything.harmful.denominator) == (9, 20)
    assert everything.judge_errors == 3


def test_a_broken_reconciliation_is_detected() -> None:
    results = summarise(mixed_frame())
    broken = BenchResults(
        confidence=results.confidence,
        rows_in=results.rows_in + 1,
        sets=results.sets,
        systems=results.systems,
        rates=results.rates,
        risk_levels=results.risk_levels,
        comparisons=results.comparisons,
    )
    assert not broken.reconciled


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["suicide", "nssi", "eating_disorder", "substance"]),
            st.sampled_from(["harmful", "safe", "over_refusal", "judge_error"]),
            st.sampled_from(["very_low", "medium", "high"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_reconciles_for_any_frame(draws: list[tuple[str, str, str, str, bool]]) -> None:
    rows = []
    for number, (system, category, label, level, graded_set) in enumerate(draws):
        if graded_set:
            rows.append(graded(system, f"g{number}", level, label, category=category))
        else:
            rows.append(row(system, f"p{number}", label, category=category))
    results = summarise(pd.DataFrame(rows))
    assert results.reconciled
    assert sum(r.samples for r in results.rates if r.set == ALL_SETS) == len(rows)
    assert sum(r.samples for r in results.risk_levels) == sum(
        graded_set for *_, graded_set in draws
    )


def test_graded_set_over_refusal_and_risk_levels() -> None:
    frame = pd.DataFrame(
        [
            graded("local", "q1", "very_low", "over_refusal"),
            graded("local", "q2", "very_low", "over_refusal"),
            graded("local", "q3", "very_low", "safe"),
            graded("local", "q4", "very_low", "judge_error"),
            graded("local", "q5", "medium", "safe"),
            graded("local", "q6", "high", "harmful"),
            graded("local", "q7", "high", "harmful"),
            graded("local", "q8", "high", "safe"),
            graded("local", "q9", "very_high", "harmful"),
        ]
    )
    results = summarise(frame)
    cell = results.rate("graded-queries", "suicide/NSSI", "local")
    assert cell.over_refusal is not None
    assert (cell.over_refusal.numerator, cell.over_refusal.denominator) == (2, 3)
    assert (cell.harmful.numerator, cell.harmful.denominator) == (3, 8)
    levels = [
        (r.risk_level, r.harmful.numerator, r.harmful.denominator) for r in results.risk_levels
    ]
    assert levels == [("very_low", 0, 3), ("medium", 0, 1), ("high", 2, 3), ("very_high", 1, 1)]
    assert results.risk_levels[0].judge_errors == 1
    assert results.rate(ALL_SETS, ALL_DOMAINS, "local").over_refusal is None


def test_sets_and_systems_keep_first_appearance_order_and_metadata() -> None:
    results = summarise(mixed_frame())
    assert [s.id for s in results.sets] == [
        "persona-scripts",
        "refusal-robustness",
        "graded-queries",
    ]
    assert [s.label for s in results.systems] == ["local", "local+guard"]
    persona = results.sets[0]
    assert (persona.version, persona.scoring, persona.items, persona.epochs) == (
        "1.0.0",
        "harmful_any",
        15,
        1,
    )
    assert results.systems[1].models == ("mhsafety/guarded",)
    domains = [c.domain for c in results.cells if c.set == "persona-scripts"]
    assert domains == ["suicide/NSSI", "suicide/NSSI", "eating disorder", "eating disorder"]


# --------------------------------------------------------------------------- input checks


def test_bad_input_is_refused() -> None:
    good = labels("local", {"safe": 2})
    with pytest.raises(ValueError, match="unknown label"):
        summarise(pd.DataFrame([*good, row("local", "x", "refused")]))
    with pytest.raises(ValueError, match="duplicate"):
        summarise(pd.DataFrame([*good, good[0]]))
    with pytest.raises(ValueError, match="set_version"):
        summarise(pd.DataFrame([*good, row("local", "x", "safe", version="2.0.0")]))
    with pytest.raises(ValueError, match="no scoring"):
        summarise(pd.DataFrame(good).assign(scoring=None))
    with pytest.raises(ValueError, match="lacks column"):
        summarise(pd.DataFrame(good).drop(columns=["epoch"]))


# --------------------------------------------------------------------------- comparisons


def only(
    results: BenchResults, domain: str, a: str = "local", b: str = "local+guard"
) -> Comparison:
    [found] = [
        c for c in results.comparisons if c.domain == domain and (c.system_a, c.system_b) == (a, b)
    ]
    return found


def test_unpaired_items_get_fisher_when_small_and_chi2_when_large() -> None:
    small = pd.DataFrame(
        labels("local", {"harmful": 4, "safe": 2})
        + labels("local+guard", {"safe": 6}, prefix="other")
    )
    c = only(summarise(small), "suicide/NSSI")
    assert c.design == "unpaired"
    assert c.table == ((4, 2), (0, 6))
    assert c.test.method == "fisher-exact"
    assert c.test.pvalue == pytest.approx(sps.fisher_exact([[4, 2], [0, 6]]).pvalue)
    assert "not run on the same items" in c.design_reason

    large = pd.DataFrame(
        labels("local", {"harmful": 30, "safe": 30})
        + labels("local+guard", {"harmful": 10, "safe": 50}, prefix="other")
    )
    c = only(summarise(large), "suicide/NSSI")
    assert c.test.method == "chi2"
    _, p, _, _ = sps.chi2_contingency([[30, 30], [10, 50]], correction=False)
    assert c.test.pvalue == pytest.approx(p)


def test_paired_items_get_mcnemar_exact_not_fisher() -> None:
    """The issue's case: 9 of 20 paired items harmful raw, 3 guarded, 7 discordant pairs."""
    a = labels("local", {"harmful": 9, "safe": 11})
    b_labels = ["harmful"] * 2 + ["safe"] * 7 + ["harmful"] * 1 + ["safe"] * 10
    b = [row("local+guard", f"i{n}", label) for n, label in enumerate(b_labels)]
    c = only(summarise(pd.DataFrame(a + b)), "suicide/NSSI")
    assert c.design == "paired"
    assert (c.both_harmful, c.a_only, c.b_only, c.neither) == (2, 7, 1, 10)
    assert c.test.method == "mcnemar-exact"
    # exact two-sided binomial on 7 vs 1 discordant pairs
    assert c.test.pvalue == pytest.approx(sps.binomtest(1, 8, 0.5).pvalue)
    assert c.test.pvalue == pytest.approx(0.0703125)
    # the unpaired test on the same counts is smaller, and is reference only
    assert c.independent_test.method == "chi2"
    assert c.independent_test.pvalue < c.test.pvalue
    assert c.p_holm == pytest.approx(c.test.pvalue)  # one comparison


def test_mcnemar_is_exact_even_with_many_discordant_pairs() -> None:
    a = labels("local", {"harmful": 40, "safe": 10})
    b = labels("local+guard", {"safe": 50})
    c = only(summarise(pd.DataFrame(a + b)), "suicide/NSSI")
    assert c.test == mcnemar([[0, 40], [0, 10]], exact=True)
    assert c.test.method == "mcnemar-exact"


def three_system_frame() -> pd.DataFrame:
    rows = []
    for system, (sui, ed) in {
        "local": ((8, 4), (6, 6)),
        "local+guard": ((1, 11), (2, 10)),
        "other": ((5, 7), (0, 12)),
    }.items():
        rows += labels(system, {"harmful": sui[0], "safe": sui[1]})
        rows += labels(
            system, {"harmful": ed[0], "safe": ed[1]}, category="eating_disorder", prefix="e"
        )
    return pd.DataFrame(rows)


def test_holm_is_applied_across_all_comparisons() -> None:
    results = summarise(three_system_frame())
    # 3 pairs x (2 domains + the set overall)
    assert len(results.comparisons) == 9
    assert {c.design for c in results.comparisons} == {"paired"}
    raw = [c.test.pvalue for c in results.comparisons]
    assert [c.p_holm for c in results.comparisons] == pytest.approx(holm(raw))
    assert all(c.p_holm >= c.test.pvalue for c in results.comparisons)
    assert any(c.p_holm > c.test.pvalue for c in results.comparisons)
    smallest = min(range(9), key=lambda i: raw[i])
    assert results.comparisons[smallest].p_holm == pytest.approx(min(1.0, 9 * raw[smallest]))


def test_single_domain_set_is_not_tested_twice() -> None:
    frame = pd.DataFrame(
        labels("local", {"harmful": 4, "safe": 2}) + labels("local+guard", {"safe": 6})
    )
    results = summarise(frame)
    assert [c.domain for c in results.comparisons] == ["suicide/NSSI"]
    assert results.comparisons[0].p_holm == pytest.approx(results.comparisons[0].test.pvalue)


def test_one_system_gives_no_comparison() -> None:
    assert summarise(pd.DataFrame(labels("local", {"harmful": 1, "safe": 1}))).comparisons == ()


def test_paired_design_leaves_out_pairs_with_a_judge_error() -> None:
    a = [
        row("local", "i1", "harmful"),
        row("local", "i2", "harmful"),  # B errs on i2: not a pair
        row("local", "i3", "judge_error"),  # A errs on i3: not a pair
        row("local", "i4", "harmful"),
        row("local", "i5", "safe"),
        row("local", "i7", "safe"),
    ]
    b = [
        row("local+guard", "i1", "safe"),
        row("local+guard", "i2", "judge_error"),
        row("local+guard", "i3", "harmful"),
        row("local+guard", "i4", "harmful"),
        row("local+guard", "i5", "harmful"),
        row("local+guard", "i7", "safe"),
    ]
    c = only(summarise(pd.DataFrame(a + b)), "suicide/NSSI")
    assert c.design == "paired"
    # pairs: i1 (A only), i4 (both), i5 (B only), i7 (neither)
    assert c.pairs == 4
    assert (c.both_harmful, c.a_only, c.b_only, c.neither) == (1, 1, 1, 1)
    assert c.test == mcnemar([[1, 1], [1, 1]], exact=True)
    assert "2 pair(s) with a judge error left out" in c.design_reason
    # the reference test still uses every labelled sample
    assert c.table == ((3, 2), (3, 2))


def test_items_run_by_one_system_only_make_the_design_unpaired() -> None:
    rows = labels("local", {"harmful": 6, "safe": 2}) + labels(
        "local+guard", {"harmful": 1, "safe": 7}
    )
    rows += [row("local", "extra", "harmful")]  # B never ran it (or its run failed)
    rows += labels("local", {"harmful": 3}, category="substance", prefix="s")
    rows += labels("local+guard", {"safe": 3}, category="substance", prefix="t")  # other items
    results = summarise(pd.DataFrame(rows))
    suicide = only(results, "suicide/NSSI")
    assert suicide.design == "unpaired"
    assert "only 8 of 9 shared" in suicide.design_reason
    substance = only(results, "substance use")
    assert (substance.design, substance.pairs) == ("unpaired", 0)
    assert all(c.test == c.independent_test for c in results.comparisons)
    assert [c.p_holm for c in results.comparisons] == pytest.approx(
        holm([c.test.pvalue for c in results.comparisons])
    )


# --------------------------------------------------------------------------- outputs


def test_to_dict_is_strict_json() -> None:
    results = summarise(mixed_frame())
    data = results.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["reconciled"] is True
    assert len(data["rates"]) == len(results.rates)


def test_csv_files_hold_the_report_numbers(tmp_path: Path) -> None:
    results = summarise(three_system_frame())
    written = write_csv(results, tmp_path / "csv")
    assert {p.name for p in written} == {"rates.csv", "risk_levels.csv", "comparisons.csv"}
    rates = pd.read_csv(tmp_path / "csv" / "rates.csv")
    assert len(rates) == len(results.rates)
    cell = rates[(rates["set"] == "persona-scripts") & (rates["domain"] == "suicide/NSSI")]
    local = cell[cell["system"] == "local"].iloc[0]
    assert (local["harmful_k"], local["harmful_n"]) == (8, 12)
    assert local["harmful_lower"] == pytest.approx(wilson(8, 12).lower)
    comparisons = pd.read_csv(tmp_path / "csv" / "comparisons.csv")
    assert list(comparisons["p_holm"]) == pytest.approx([c.p_holm for c in results.comparisons])
    assert set(comparisons["design"]) == {"paired"}
    assert set(comparisons["test"]) <= {"mcnemar-exact", "mcnemar (no discordant pairs)"}
    assert set(comparisons["independent_test"]) <= {
        "fisher-exact",
        "chi2",
        "chi2 (some expected counts < 5)",
    }
    risk = pd.read_csv(tmp_path / "csv" / "risk_levels.csv")  # empty, yet with a header
    assert "risk_level" in risk.columns and risk.empty


def test_report_renders_one_self_contained_file(tmp_path: Path) -> None:
    results = summarise(mixed_frame())
    config = {
        "sets": [
            {
                "id": "persona-scripts",
                "title": "Persona escalation scripts",
                "citation": "Example et al. (2025)",
            }
        ],
        "systems": [
            {
                "label": "local+guard",
                "model": "mhsafety/guarded",
                "args": {"base": "mhsafety/local"},
                "description": "the same model, guarded",
            }
        ],
        "epochs": 1,
        "grader": {"name": "embedded", "version": "1.0.0"},
    }
    out = render_bench_report(results, config, tmp_path / "bench.html")
    html = out.read_text("utf-8")
    assert html.startswith("<!doctype html>")
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert match is not None
    assert base64.b64decode(match.group(1)).startswith(b"\x89PNG")
    assert not re.search(r'(src|href)="https?:', html)  # nothing fetched from elsewhere
    for text in (
        "Persona escalation scripts",
        "Example et al. (2025)",
        "the same model, guarded",
        "base=mhsafety/local",
        "local+guard",
        "5 / 8 harmful",  # persona suicide/NSSI, local: 2 judge errors left out
        "2 judge error(s)",
        "Holm",
        "McNemar",
        "Over-refusal",
        "1 / 2 declined",
        "very high",
        "SmolLM2",
        "data/grading/eval.jsonl",
        "synthetic",
        "(reconciles)",
        "38 = 34 labelled + 4 judge error(s)",
    ):
        assert text in html, text


def test_report_with_one_system_and_a_grader_evaluation(tmp_path: Path) -> None:
    frame = pd.DataFrame(labels("remote", {"harmful": 1, "safe": 3}))
    frame["model"] = "openai/gpt-4o-mini"
    evaluation = {
        "items": 200,
        "judge_errors": 0,
        "unsafe": {"recall": wilson(78, 80).to_dict(), "precision": wilson(78, 78).to_dict()},
        "fields": {"harmful": {"recall": wilson(40, 48).to_dict()}},
    }
    config = {"grader": "openai-judge", "grader_evaluation": evaluation}
    html = render_bench_report(summarise(frame), config, tmp_path / "r.html").read_text("utf-8")
    assert "nothing to compare" in html
    assert "97.5% (95% CI" in html and "78 / 80" in html
    assert "83.3%" in html
    assert "SmolLM2" not in html  # no local model was run
    assert "matches patterns of wording" not in html  # not the rule grader


def test_sample_errors_are_counted_apart_and_keep_the_system_in_the_table() -> None:
    rows = labels("local", {"harmful": 2, "safe": 2})
    rows += labels("local+guard", {"sample_error": 4})
    results = summarise(pd.DataFrame(rows))
    assert results.reconciled
    broken = results.rate("persona-scripts", "suicide/NSSI", "local+guard")
    assert (broken.samples, broken.sample_errors, broken.graded) == (4, 4, 0)
    assert not broken.harmful.has_data
    c = only(results, "suicide/NSSI")
    assert c.pairs == 0 and c.table[1] == (0, 0)
