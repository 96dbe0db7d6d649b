"""Review sample design and clinician label parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mhsafety.audit.labels import read_labels
from mhsafety.audit.sampling import FLAGGED_STRATUM, Band, SamplingPlan, draw_review_sample
from mhsafety.taxonomy import Category


def screened(n: int = 5000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scores = rng.beta(0.5, 4, n)
    return pd.DataFrame(
        {"id": [f"c{i}" for i in range(n)], "flagged": scores > 0.6, "max_score": scores}
    )


def test_every_flagged_conversation_is_reviewed_and_unflagged_sampled_at_rate() -> None:
    frame = screened()
    plan = SamplingPlan((Band("hi", 0.15, 0.2), Band("lo", 0.0, 0.05)), min_per_stratum=10, seed=3)
    queue, strata = draw_review_sample(frame, plan)
    flagged_ids = set(frame.loc[frame.flagged, "id"])
    assert flagged_ids <= set(queue["id"])
    assert (queue.loc[queue.stratum == FLAGGED_STRATUM, "inclusion_prob"] == 1.0).all()
    for row in strata.itertuples():
        if row.stratum == FLAGGED_STRATUM:
            assert row.census and row.sampled == row.population
            continue
        rate = {"hi": 0.2, "lo": 0.05}[row.stratum]
        assert row.sampled == max(10, round(rate * row.population))
        probs = queue.loc[queue.stratum == row.stratum, "inclusion_prob"].unique()
        assert probs.tolist() == [pytest.approx(row.sampled / row.population)]
    assert strata["population"].sum() == len(frame)
    assert queue["id"].is_unique


def test_sample_is_deterministic_per_seed_and_order_interleaves_strata() -> None:
    frame = screened()
    first, _ = draw_review_sample(frame, SamplingPlan(seed=5))
    second, _ = draw_review_sample(frame, SamplingPlan(seed=5))
    other, _ = draw_review_sample(frame, SamplingPlan(seed=6))
    pd.testing.assert_frame_equal(first, second)
    assert set(first["id"]) != set(other["id"])
    head = first.head(100)
    assert head["stratum"].nunique() > 1  # flagged first would unblind the reviewer
    assert first["review_order"].tolist() == list(range(1, len(first) + 1))


def test_small_strata_are_taken_whole() -> None:
    frame = screened(50)
    _, strata = draw_review_sample(frame, SamplingPlan(min_per_stratum=1000))
    assert strata["census"].all()


def test_bad_plans_are_rejected() -> None:
    with pytest.raises(ValueError, match="rate"):
        SamplingPlan((Band("a", 0.0, 1.5),))
    with pytest.raises(ValueError, match="lowest band"):
        SamplingPlan((Band("a", 0.2, 0.1),))
    with pytest.raises(ValueError, match="unique"):
        SamplingPlan((Band("a", 0.2, 0.1), Band("a", 0.0, 0.1)))


HEADER = (
    "conversation_id,risk_suicide,risk_nssi,risk_eating_disorder,risk_substance,"
    "intervened_suicide,intervened_nssi,intervened_eating_disorder,intervened_substance,"
    "reviewer,note\n"
)


def test_labels_parse_resolve_and_report(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text(
        HEADER
        + "c1,yes,no,no,no,yes,,,,alice,\n"
        + "c1,yes,no,no,no,no,,,,bob,\n"  # disagreement on the intervention
        + "c2,no,yes,no,no,,partial,,,alice,\n"
        + "c3,,,,,,,,,,\n"  # not labelled yet
        + "c4,maybe,no,no,no,,,,,alice,\n"  # bad value
        + "c5,yes,no,,no,,,,,alice,\n",  # incomplete
        encoding="utf-8",
    )
    labels = read_labels(path)
    assert labels.summary() == {
        "rows_read": 6,
        "rows_used": 3,
        "rows_unlabelled": 1,
        "rows_with_problems": 2,
        "conversations": 2,
        "conversations_with_conflicts": 1,
        "conversations_simulated": 0,
    }
    c1 = labels.labels["c1"]
    assert c1.risk[Category.SUICIDE] and c1.intervened[Category.SUICIDE] is False
    assert c1.conflicts == (Category.SUICIDE,)
    assert labels.labels["c2"].intervened[Category.NSSI] is True
    assert labels.labels["c2"].partial[Category.NSSI]
    assert labels.labels["c2"].intervened[Category.SUICIDE] is None
    assert any(":6:" in p and "maybe" in p for p in labels.problems)
    assert any(":7:" in p and "eating_disorder" in p for p in labels.problems)


def test_labels_missing_columns_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("conversation_id,risk_suicide\nc1,yes\n")
    with pytest.raises(ValueError, match="missing columns risk_eating_disorder"):
        read_labels(path)
