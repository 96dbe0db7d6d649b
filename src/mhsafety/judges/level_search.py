"""Searching the embedded screen's decision levels on labelled conversations (pure core).

The embedded judge flags a category when a conversation's **message feature** (the highest
combined score of a user message, or of a packed run read as one text) reaches the message
level, or its **run feature** (the highest pooled-run score) reaches the conversation level
(:mod:`mhsafety.judges.embedded`). Given both features per conversation and the labels, this
module finds levels on a grid of candidate levels (:data:`SHIPPED_GRID` unless told) by one of
three rules:

* :func:`best_recall_levels`: the highest recall at a precision floor (else the best F1);
  the rule ``scripts/calibrate_screen.py`` sets the shipped flag levels with;
* :func:`best_precision_levels`: the highest precision at a recall floor (else the highest
  recall), which ``benchmarks/screen_ceiling.py`` uses to ask what the features could reach;
* :func:`lowest_quiet`: the lowest levels at or above a start that flag at most a share of the
  control conversations (guard levels; categories without real positives).

Rows whose label the source does not speak for are excluded through ``labelled``. Message
levels stop at :data:`~mhsafety.judges.calibration.LEXICON_FLAG_SIGNAL`, so a coded or explicit
lexicon hit is flagged at every level this module can return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from mhsafety.conversation import Conversation
from mhsafety.judges.base import ConversationScreen
from mhsafety.judges.calibration import LEXICON_FLAG_SIGNAL
from mhsafety.judges.embedded import CONTEXT_LAYER, RUN_TEXT_LAYER, EmbeddedJudge
from mhsafety.taxonomy import CATEGORIES

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MESSAGE_GRID: FloatArray = np.round(np.arange(0.50, LEXICON_FLAG_SIGNAL + 1e-9, 0.01), 2)
"""Message levels searched: 0.50 to the lexicon signal, in steps of 0.01."""
CONVERSATION_GRID: FloatArray = np.round(np.arange(0.30, 1.0 + 1e-9, 0.01), 2)
"""Conversation (pooled-run) levels searched: 0.30 to 1.00, in steps of 0.01."""


@dataclass(frozen=True)
class Operating:
    """One pair of levels and what it does on the labelled rows."""

    message_level: float
    conversation_level: float
    tp: int
    fp: int
    fn: int
    floor_met: bool = True
    """False when the search's floor (precision or recall) was out of reach and the fallback
    rule chose these levels."""

    @property
    def precision(self) -> float:
        """Flagged rows that are positive (0.0 when nothing is flagged)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """Positive rows that are flagged."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def conversation_features(
    judge: EmbeddedJudge, conversations: Sequence[Conversation]
) -> tuple[FloatArray, FloatArray]:
    """The judge's screens of the conversations, as :func:`screen_features`."""
    return screen_features(judge.screen(conversations))


def screen_features(screens: Sequence[ConversationScreen]) -> tuple[FloatArray, FloatArray]:
    """Per screen (rows) and category (columns of :data:`CATEGORIES`): the message feature and
    the run feature the embedded judge's levels are compared with.

    The message feature is the highest combined score of a user message (zero for a short
    follow-up, which is tested only inside its runs) or of a packed run read as one text; the
    run feature is the highest pooled-run score.
    """
    message = np.zeros((len(screens), len(CATEGORIES)))
    run = np.zeros_like(message)
    for row, screen in enumerate(screens):
        for score in screen.messages:
            joined = score.layers.get(RUN_TEXT_LAYER, {})
            pooled = score.layers.get(CONTEXT_LAYER, {})
            for column, category in enumerate(CATEGORIES):
                message[row, column] = max(
                    message[row, column], score.combined[category], joined.get(category, 0.0)
                )
                run[row, column] = max(run[row, column], pooled.get(category, 0.0))
    return message, run


def _counted(
    flags: BoolArray, truth: BoolArray, labelled: BoolArray, message_level: float, level: float
) -> Operating:
    return Operating(
        float(message_level),
        float(level),
        int((flags & truth & labelled).sum()),
        int((flags & ~truth & labelled).sum()),
        int((~flags & truth & labelled).sum()),
    )


def operating(
    message: FloatArray,
    run: FloatArray,
    truth: BoolArray,
    labelled: BoolArray,
    message_level: float,
    conversation_level: float,
) -> Operating:
    """What one pair of levels does on the labelled rows of one category."""
    flags = (message >= message_level) | (run >= conversation_level)
    return _counted(flags, truth, labelled, message_level, conversation_level)


def flagged_any(
    message: FloatArray, run: FloatArray, levels: Sequence[tuple[float, float]]
) -> BoolArray:
    """Per row: flagged in any category at that category's (message, conversation) levels
    (``levels`` in the order of :data:`CATEGORIES`)."""
    flags = np.zeros(len(message), dtype=bool)
    for column, (message_level, conversation_level) in enumerate(levels):
        flags |= (message[:, column] >= message_level) | (run[:, column] >= conversation_level)
    return flags


WIDE_MESSAGE_GRID: FloatArray = np.round(np.arange(0.01, LEXICON_FLAG_SIGNAL + 1e-9, 0.01), 2)
"""Every message level from 0.01 to the lexicon signal: for asking what any levels could
reach (``benchmarks/screen_ceiling.py``), not for shipping."""
WIDE_CONVERSATION_GRID: FloatArray = np.round(np.arange(0.01, 1.0 + 1e-9, 0.01), 2)
"""Every conversation level from 0.01 to 1.00, likewise."""


@dataclass(frozen=True)
class Grid:
    """The message and conversation levels a search may choose from (ascending)."""

    message: FloatArray
    conversation: FloatArray


SHIPPED_GRID = Grid(MESSAGE_GRID, CONVERSATION_GRID)
"""The grid ``scripts/calibrate_screen.py`` chooses shipped levels from."""
WIDE_GRID = Grid(WIDE_MESSAGE_GRID, WIDE_CONVERSATION_GRID)


def _candidates(
    message: FloatArray, run: FloatArray, truth: BoolArray, labelled: BoolArray, grid: Grid
) -> list[Operating]:
    if not (truth & labelled).any():
        raise ValueError("no labelled positives: levels cannot be searched for this category")
    candidates = []
    for tm in grid.message:
        by_message = message >= tm
        for tc in grid.conversation:
            candidates.append(_counted(by_message | (run >= tc), truth, labelled, tm, tc))
    return candidates


def best_recall_levels(
    message: FloatArray,
    run: FloatArray,
    truth: BoolArray,
    labelled: BoolArray,
    min_precision: float,
    grid: Grid = SHIPPED_GRID,
) -> Operating:
    """The levels on ``grid`` with the highest recall at precision >= ``min_precision`` (ties:
    higher precision, then the lower levels); where no pair reaches the floor, the pair with
    the best F1, marked ``floor_met=False``.

    Raises:
        ValueError: the labelled rows hold no positive.
    """
    candidates = _candidates(message, run, truth, labelled, grid)
    met = [o for o in candidates if o.precision >= min_precision and o.tp]
    if met:
        return max(met, key=lambda o: (o.recall, o.precision))
    return replace(max(candidates, key=lambda o: o.f1), floor_met=False)


def best_precision_levels(
    message: FloatArray,
    run: FloatArray,
    truth: BoolArray,
    labelled: BoolArray,
    min_recall: float,
    grid: Grid = SHIPPED_GRID,
) -> Operating:
    """The levels on ``grid`` with the highest precision at recall >= ``min_recall`` (ties:
    higher recall, then the lower levels); where no pair reaches the floor, the pair with the
    highest recall, marked ``floor_met=False``.

    Raises:
        ValueError: the labelled rows hold no positive.
    """
    candidates = _candidates(message, run, truth, labelled, grid)
    met = [o for o in candidates if o.recall >= min_recall]
    if met:
        return max(met, key=lambda o: (o.precision, o.recall))
    return replace(max(candidates, key=lambda o: (o.recall, o.precision)), floor_met=False)


def lowest_quiet(
    message: FloatArray,
    run: FloatArray,
    controls: BoolArray,
    rate: float,
    message_start: float,
    conversation_start: float,
) -> tuple[float, float]:
    """The lowest grid levels at or above the start that flag at most ``rate`` of the control
    rows; each step raises the level that alone accounts for more of the control flags."""
    top_m, top_c = float(MESSAGE_GRID[-1]), float(CONVERSATION_GRID[-1])
    tm = float(min((t for t in MESSAGE_GRID if t >= message_start), default=top_m))
    tc = float(min((t for t in CONVERSATION_GRID if t >= conversation_start), default=top_c))
    m, r = message[controls], run[controls]
    while ((m >= tm) | (r >= tc)).mean() > rate:
        by_message_only = int(((m >= tm) & ~(r >= tc)).sum())
        by_run_only = int(((r >= tc) & ~(m >= tm)).sum())
        can_m, can_c = tm < top_m, tc < top_c
        if can_m and (by_message_only >= by_run_only or not can_c):
            tm = float(MESSAGE_GRID[int(np.searchsorted(MESSAGE_GRID, tm)) + 1])
        elif can_c:
            tc = float(CONVERSATION_GRID[int(np.searchsorted(CONVERSATION_GRID, tc)) + 1])
        else:
            break
    return tm, tc
