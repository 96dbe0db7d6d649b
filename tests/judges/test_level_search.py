"""The decision-level search: hand-checked cases for each rule, and the features the judge uses."""

from __future__ import annotations

import numpy as np
import pytest

from mhsafety.judges.calibration import LEXICON_FLAG_SIGNAL
from mhsafety.judges.embedded import EmbeddedJudge
from mhsafety.judges.evaluation import default_eval_path
from mhsafety.judges.level_search import (
    CONVERSATION_GRID,
    MESSAGE_GRID,
    best_precision_levels,
    best_recall_levels,
    lowest_quiet,
    operating,
    screen_features,
)
from mhsafety.logio import read_conversations
from mhsafety.taxonomy import CATEGORIES

# six conversations of one category: three positives, three negatives
MESSAGE = np.array([0.95, 0.80, 0.40, 0.85, 0.60, 0.20])
RUN = np.array([0.10, 0.10, 0.70, 0.10, 0.10, 0.50])
TRUTH = np.array([True, True, True, False, False, False])
ALL = np.ones(6, dtype=bool)


def test_operating_counts_only_labelled_rows() -> None:
    point = operating(MESSAGE, RUN, TRUTH, ALL, 0.80, 0.60)
    # flagged: rows 0, 1, 3 by message, row 2 by run
    assert (point.tp, point.fp, point.fn) == (3, 1, 0)
    assert point.precision == pytest.approx(0.75)
    assert point.recall == 1.0
    unlabelled_negative = np.array([True, True, True, False, True, True])
    point = operating(MESSAGE, RUN, TRUTH, unlabelled_negative, 0.80, 0.60)
    assert (point.tp, point.fp, point.fn) == (3, 0, 0)


def test_an_operating_point_that_flags_nothing_has_zero_precision() -> None:
    point = operating(MESSAGE, RUN, TRUTH, ALL, 0.99, 1.0)
    assert (point.tp, point.fp, point.fn) == (0, 0, 3)
    assert point.precision == 0.0 and point.recall == 0.0 and point.f1 == 0.0


def test_best_recall_at_a_precision_floor() -> None:
    # all three positives need message <= 0.80 and run <= 0.70, which also flags row 3
    # (message 0.85): precision 0.75; at a floor of 0.75 that is the answer
    chosen = best_recall_levels(MESSAGE, RUN, TRUTH, ALL, 0.75)
    assert chosen.floor_met
    assert (chosen.tp, chosen.fp, chosen.fn) == (3, 1, 0)
    # the lowest levels reaching it are chosen among ties: message 0.61..0.80 all work
    assert chosen.message_level == 0.61 and chosen.conversation_level == 0.51
    # at a floor of 1.0 only row 0 (message 0.95 > 0.85) and row 2 (run 0.70 > 0.50) qualify
    strict = best_recall_levels(MESSAGE, RUN, TRUTH, ALL, 1.0)
    assert strict.floor_met and (strict.tp, strict.fp) == (2, 0)
    assert strict.message_level == 0.86 and strict.conversation_level == 0.51


def test_best_recall_falls_back_to_f1_when_the_floor_is_out_of_reach() -> None:
    # a positive scored below every negative: precision 1.0 is reachable only without it
    message = np.array([0.55, 0.90, 0.95])
    run = np.zeros(3)
    truth = np.array([True, False, False])
    chosen = best_recall_levels(message, run, truth, np.ones(3, dtype=bool), 0.9)
    assert not chosen.floor_met
    assert (chosen.tp, chosen.fp, chosen.fn) == (1, 2, 0)


def test_best_precision_at_a_recall_floor() -> None:
    chosen = best_precision_levels(MESSAGE, RUN, TRUTH, ALL, 2 / 3)
    assert chosen.floor_met and (chosen.tp, chosen.fp) == (2, 0)
    chosen = best_precision_levels(MESSAGE, RUN, TRUTH, ALL, 1.0)
    assert chosen.floor_met and (chosen.tp, chosen.fp) == (3, 1)


def test_a_category_without_labelled_positives_cannot_be_searched() -> None:
    with pytest.raises(ValueError, match="no labelled positives"):
        best_recall_levels(MESSAGE, RUN, np.zeros(6, dtype=bool), ALL, 0.85)
    with pytest.raises(ValueError, match="no labelled positives"):
        best_precision_levels(MESSAGE, RUN, TRUTH, ~TRUTH, 0.85)


def test_message_levels_never_pass_the_lexicon_signal() -> None:
    assert MESSAGE_GRID[-1] == LEXICON_FLAG_SIGNAL
    assert CONVERSATION_GRID[-1] == 1.0
    # a lexicon hit (signal 0.99) on a negative cannot be levelled away
    message = np.array([0.99, 0.99])
    truth = np.array([True, False])
    chosen = best_precision_levels(message, np.zeros(2), truth, np.ones(2, dtype=bool), 1.0)
    assert chosen.fp == 1


def test_lowest_quiet_raises_the_level_that_flags_more_controls() -> None:
    controls = np.ones(4, dtype=bool)
    message = np.array([0.72, 0.60, 0.10, 0.10])
    run = np.array([0.10, 0.10, 0.45, 0.10])
    # at 0.60 / 0.40 three of four controls are flagged: two by message, one by run
    tm, tc = lowest_quiet(message, run, controls, 0.25, 0.60, 0.40)
    assert (tm, tc) == (0.73, 0.40)
    assert ((message >= tm) | (run >= tc)).mean() <= 0.25
    tm, tc = lowest_quiet(message, run, controls, 0.0, 0.60, 0.40)
    assert (tm, tc) == (0.73, 0.46)


def test_lowest_quiet_stops_at_the_top_of_both_grids() -> None:
    controls = np.ones(2, dtype=bool)
    tm, tc = lowest_quiet(np.array([0.99, 0.0]), np.array([1.0, 0.0]), controls, 0.0, 0.5, 0.3)
    assert (tm, tc) == (LEXICON_FLAG_SIGNAL, 1.0)


def test_the_features_reproduce_the_judges_own_flags() -> None:
    """At the shipped levels, the two features flag exactly what the judge flags; if this
    fails the search is choosing levels for a rule the judge does not apply."""
    judge = EmbeddedJudge()
    conversations = list(read_conversations(default_eval_path()))[:120]
    screens = judge.screen(conversations)
    message, run = screen_features(screens)
    levels = judge.levels("flag")
    for column, category in enumerate(CATEGORIES):
        by_features = (message[:, column] >= levels.message[category]) | (
            run[:, column] >= levels.conversation[category]
        )
        by_judge = np.array([s.flags[category] for s in screens])
        assert by_judge.any(), category
        assert (by_features == by_judge).all(), category
