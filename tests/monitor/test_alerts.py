"""Alert rules as data: the packaged file, bad files, threshold and change rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from scipy import stats as sps

from mhsafety.monitor.alerts import (
    AlertRuleError,
    Counts,
    evaluate,
    fisher_worse,
    load_rules,
)
from mhsafety.stats import holm


def test_the_packaged_rules_load_and_name_their_limits() -> None:
    rules = load_rules()
    assert rules.version == "1.0.0"
    kinds = {r.id: r.kind for r in rules.rules}
    assert kinds["misses-up-after-release"] == "change"
    assert all(r.message for r in rules.rules)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{id: x, kind: nope, metric: miss_rate}", "kind must be"),
        ("{id: x, kind: threshold, metric: speed, above: 0.1}", "metric must be"),
        ("{id: x, kind: threshold, metric: miss_rate}", "exactly one of above"),
        ("{id: x, kind: threshold, metric: miss_rate, above: 3}", "between 0 and 1"),
        ("{id: x, kind: threshold, metric: miss_rate, above: lots}", "must be a number"),
        ("{id: x, kind: change, metric: miss_rate}", "change rules test"),
        ("{id: x, kind: threshold, metric: miss_rate, above: 0.1, categories: [grief]}", "categ"),
        ("{kind: threshold}", "needs an id"),
    ],
)
def test_bad_rules_are_clear_errors(tmp_path: Path, rule: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(f"version: t\nrules:\n  - {rule}\n", "utf-8")
    with pytest.raises(AlertRuleError, match=message):
        load_rules(path)


def _rules(tmp_path: Path, body: str) -> object:
    path = tmp_path / "rules.yaml"
    path.write_text("version: t\nrules:\n" + body, "utf-8")
    return load_rules(path)


def test_threshold_reads_the_chosen_bound(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        "  - {id: low, kind: threshold, metric: miss_rate, categories: [suicide], "
        "bound: lower, above: 0.2}\n"
        "  - {id: up, kind: threshold, metric: miss_rate, categories: [suicide], "
        "bound: upper, above: 0.2}\n",
    )
    rate = {"estimate": 0.25, "lower": 0.1, "upper": 0.4, "denominator": 40, "method": "wilson"}
    empty = {"estimate": None, "lower": 0.0, "upper": 1.0, "denominator": 0, "method": "no-data"}
    windows = [
        {"label": "w1", "status": "estimated", "rates": {"suicide": {"miss_rate": rate}}},
        {"label": "w2", "status": "awaiting review", "rates": {}},
        {"label": "w3", "status": "estimated", "rates": {"suicide": {"miss_rate": empty}}},
    ]
    result = evaluate(rules, windows, {})  # type: ignore[arg-type]
    assert [(a.rule, a.where) for a in result.alerts] == [("up", "w1")]  # w3 has no data
    assert any("w2" in s and "awaiting review" in s for s in result.skipped)
    assert any("w3" in s for s in result.skipped)


def test_window_changes_compare_windows_of_one_version_only(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        "  - {id: w, kind: change, metric: miss_per_confirmed, categories: [suicide], "
        "between: windows}\n",
    )
    good, bad = {"suicide": Counts(50, 5)}, {"suicide": Counts(50, 40)}
    chains = {"windows": [[("w1 · a", good), ("w2 · a", good)], [("w1 · b", bad)]]}
    result = evaluate(rules, [], chains)  # type: ignore[arg-type]
    assert [(t.before, t.after) for t in result.tests] == [("w1 · a", "w2 · a")]
    assert not result.alerts


def test_change_rules_use_one_sided_fisher_with_holm(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        "  - {id: c, kind: change, metric: miss_per_confirmed, between: versions, alpha: 0.05}\n",
    )
    groups = {
        "versions": [
            [
                (
                    "v1",
                    {"suicide": Counts(80, 24), "nssi": Counts(40, 12), "substance": Counts(0, 0)},
                ),
                (
                    "v2",
                    {"suicide": Counts(80, 48), "nssi": Counts(40, 8), "substance": Counts(10, 9)},
                ),
            ]
        ]
    }
    result = evaluate(rules, [], groups)  # type: ignore[arg-type]
    by_category = {t.category: t for t in result.tests}
    expected = sps.fisher_exact([[48, 32], [24, 56]], alternative="greater").pvalue
    assert by_category["suicide"].p == pytest.approx(expected)
    raw = [t.p for t in result.tests]
    assert [t.p_holm for t in result.tests] == pytest.approx(holm(raw), nan_ok=True)
    assert [a.category for a in result.alerts] == ["suicide"]  # nssi improved; substance empty
    assert any("substance" in s for s in result.skipped)


def test_fisher_worse_is_undefined_without_confirmed_risk() -> None:
    assert fisher_worse(Counts(0, 0), Counts(5, 5)) != fisher_worse(Counts(0, 0), Counts(5, 5))
    assert fisher_worse(Counts(10, 1), Counts(10, 9)) < 0.01
    assert fisher_worse(Counts(10, 9), Counts(10, 1)) > 0.99
