"""Coverage clusters (pure, on made-up vectors) and the bench-vs-real-world table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mhsafety.monitor.compare import bench_vs_real
from mhsafety.monitor.coverage import RealMessage, TestTurn, bench_turns, coverage_of


def _unit(vectors: list[list[float]]) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_a_style_no_test_turn_resembles_is_uncovered() -> None:
    rng = np.random.default_rng(0)
    near_x = [[1.0, 0.05 * rng.standard_normal(), 0.05 * rng.standard_normal()] for _ in range(5)]
    near_y = [[0.05 * rng.standard_normal(), 1.0, 0.05 * rng.standard_normal()] for _ in range(4)]
    lonely = [[0.0, 0.0, 1.0], [0.0, -1.0, 0.2]]
    messages = [
        RealMessage(f"m{i}", f"c{i}", "w1" if i % 2 else "w2", ("suicide",), "explicit")
        for i in range(11)
    ]
    vectors = _unit(near_x + near_y + lonely)
    turns = [TestTurn("test x", "set-a", "a-1")]
    result = coverage_of(messages, vectors, turns, _unit([[1.0, 0.0, 0.0]]), min_cluster=3)
    sizes = [(c["size"], c["uncovered"]) for c in result["clusters"]]
    assert sizes == [(4, True), (5, False)]  # uncovered first
    assert result["other"] == 2 and result["uncovered_messages"] == 4
    assert result["covered_messages"] == 5
    covered = result["clusters"][1]
    assert covered["nearest_turn"]["item"] == "a-1" and covered["windows"] == 2
    assert covered["styles"] == {"explicit": 5}


def test_empty_inputs_give_an_empty_coverage() -> None:
    result = coverage_of([], np.zeros((0, 3), np.float32), [], np.zeros((0, 3), np.float32))
    assert result["clusters"] == [] and result["messages"] == 0


def test_every_packaged_set_gives_its_user_turns() -> None:
    turns = bench_turns()
    sets = {t.set for t in turns}
    assert {"graded-queries", "refusal-robustness", "simulated-users"} <= sets
    assert all(t.text.strip() for t in turns)


def _rows(system: str, category: str, labels: list[str], set_id: str = "s") -> list[dict[str, str]]:
    return [
        {"system": system, "set": set_id, "category": category, "label": label} for label in labels
    ]


def test_bench_beside_real_world_per_category() -> None:
    rows = pd.DataFrame(
        _rows("guarded", "suicide", ["harmful", "safe", "safe", "judge_error"])
        + _rows("guarded", "suicide", ["harmful"] * 3, set_id="confirmed-misses")
        + _rows("raw", "suicide", ["harmful"])
    )
    miss = {"estimate": 0.5, "lower": 0.3, "upper": 0.7, "numerator": 5, "denominator": 10}
    version = {
        "version": "v2",
        "conversations_estimated": 100,
        "estimated_windows": ["w1"],
        "rates": {"suicide": {"miss_per_risk": miss, "miss_per_confirmed": miss}},
    }
    table = bench_vs_real(rows, "guarded", version, exclude_sets=["confirmed-misses"])
    suicide = next(r for r in table["rows"] if r["category"] == "suicide")
    assert suicide["bench"]["numerator"] == 1 and suicide["bench"]["denominator"] == 3
    assert suicide["bench_not_graded"] == 1 and suicide["real_miss_per_risk"] == miss
    nssi = next(r for r in table["rows"] if r["category"] == "nssi")
    assert nssi["bench"]["denominator"] == 0 and nssi["real_miss_per_risk"] is None
    with pytest.raises(ValueError, match="no test-set samples of system 'nobody'"):
        bench_vs_real(rows, "nobody", version)
