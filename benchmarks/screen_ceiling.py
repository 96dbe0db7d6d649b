"""Are the screen's targets out of reach of its encoder, or only of its shipped levels?

Usage::

    python benchmarks/screen_ceiling.py [--precision 0.85] [--recall 0.85 0.90]
                                        [--grid wide|shipped] [--skip-reserved]

For each labelled real set, it computes once the two features the pinned embedded judge
decides on (per conversation and category: the message feature and the pooled-run feature;
``judges/level_search.py``) and prints per category with labelled positives:

* **shipped**: precision and recall at the pinned flag levels (what ``judge eval`` reports);
* **best recall at precision >= P**: the highest recall any pair of levels reaches on *this
  very set* at the precision floor (levels from 0.01 up, every 0.01; ``--grid shipped``
  searches only the grid the shipped levels were chosen from);
* **best precision at recall >= R**: the highest precision any pair reaches at each recall
  floor;
* and the share of the set's control conversations (labelled, no risk in any category)
  flagged in any category at the shipped levels and at the levels of the first column.

The second and third are *in-sample ceilings*: levels chosen on the set they are scored on,
so they are optimistic, and a target a ceiling misses is out of reach of this encoder and head
with the judge's two-feature rule, whatever levels are shipped. This script is reporting only:
it never writes levels, and the reserved RallyPoint set is read, never tuned on
(``--skip-reserved`` leaves it out).

Sets: the Reddit calibration split (turns and whole posts; where the shipped levels were
chosen), the Reddit test split (turns and whole posts) and the reserved RallyPoint set.
"""

from __future__ import annotations

import argparse

import numpy as np
from screen_cascade import real_labels  # the sibling benchmark

from mhsafety.conversation import Conversation
from mhsafety.judges.embedded import EmbeddedJudge
from mhsafety.judges.level_search import (
    SHIPPED_GRID,
    WIDE_GRID,
    Operating,
    best_precision_levels,
    best_recall_levels,
    conversation_features,
    flagged_any,
    operating,
)
from mhsafety.realtext import load_named_set, reddit_posts
from mhsafety.taxonomy import CATEGORIES

SETS = ("reddit-calibration-turns", "reddit-calibration", "reddit-test-turns", "reddit-test")


def load(name: str) -> list[Conversation]:
    """A named set; ``reddit-calibration-turns`` is the calibration split cut into turns."""
    if name == "reddit-calibration-turns":
        return [p.conversation(turns=True) for p in reddit_posts("calibration")]
    return load_named_set(name)


def cell(o: Operating, has_runs: bool) -> str:
    """P/R of an operating point and its (message/conversation) levels, with a mark where the
    floor was out of reach; without runs (one message each) the conversation level is moot."""
    mark = "" if o.floor_met else " (floor not met)"
    levels = f"@{o.message_level:.2f}/" + (f"{o.conversation_level:.2f}" if has_runs else "-")
    return f"P {o.precision:.2f} R {o.recall:.2f} {levels}{mark}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--precision", type=float, default=0.85)
    parser.add_argument("--recall", type=float, nargs="+", default=[0.85, 0.90])
    parser.add_argument("--grid", choices=("wide", "shipped"), default="wide")
    parser.add_argument("--skip-reserved", action="store_true")
    args = parser.parse_args(argv)

    grid = WIDE_GRID if args.grid == "wide" else SHIPPED_GRID
    judge = EmbeddedJudge()
    shipped = judge.levels("flag")
    shipped_levels = [(shipped.message[c], shipped.conversation[c]) for c in CATEGORIES]
    names = [*SETS, *(() if args.skip_reserved else ("rallypoint",))]
    for name in names:
        conversations = load(name)
        labels = [real_labels(c) for c in conversations]
        truth = np.array([[bool(row[c]) for c in CATEGORIES] for row in labels])
        labelled = np.array([[row[c] is not None for c in CATEGORIES] for row in labels])
        controls = labelled.all(axis=1) & ~truth.any(axis=1)
        message, run = conversation_features(judge, conversations)
        reserved = " (RESERVED: read, never tuned on)" if name == "rallypoint" else ""
        n_controls = int(controls.sum())
        print(f"\n{name}{reserved}: {len(conversations)} conversations, {n_controls} controls")
        has_runs = bool((run > 0).any())
        ceiling_levels = list(shipped_levels)
        for column, category in enumerate(CATEGORIES):
            t, known = truth[:, column], labelled[:, column]
            if not (t & known).any():
                continue
            m, r = message[:, column], run[:, column]
            now = operating(m, r, t, known, *shipped_levels[column])
            best_r = best_recall_levels(m, r, t, known, args.precision, grid)
            ceiling_levels[column] = (best_r.message_level, best_r.conversation_level)
            print(f"  {category:16s} positives {now.tp + now.fn}")
            print(f"    shipped                      {cell(now, has_runs)}")
            print(f"    best recall at P >= {args.precision:.2f}     {cell(best_r, has_runs)}")
            for floor in args.recall:
                best_p = best_precision_levels(m, r, t, known, floor, grid)
                print(f"    best precision at R >= {floor:.2f}  {cell(best_p, has_runs)}")
        if controls.any():
            print(
                "  controls flagged (any category): shipped "
                f"{flagged_any(message, run, shipped_levels)[controls].mean():.2%}, at the "
                "best-recall levels "
                f"{flagged_any(message, run, ceiling_levels)[controls].mean():.2%}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
