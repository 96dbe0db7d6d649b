"""Reading runs of user messages as one text: what it changes and what it costs.

Usage::

    python benchmarks/screen_run_text.py [--synthetic 4000] [--skip-reserved]

The pinned calibration reads consecutive user messages packed into one encoder window as one
text (``run_text``; ``judges/embedded.py:pack_runs``). This screens each multi-message set
twice, with the pinned judge and with the same judge and levels but ``run_text`` off, each
from a cold embedding cache, and prints per set: conversations per second of both and their
ratio, texts sent through the encoder, conversations flagged by each, and recall per category
against the set's labels. Whole-post sets are one message per conversation and do not change.

Sets: the Reddit test split as chat-length turns, the ChatterBot test split (short ordinary
chat), a synthetic deployment log (seed differs from ``make demo``'s) and the reserved
RallyPoint set cut into turns (evaluation only; ``--skip-reserved`` leaves it out). None was
read to set the levels. Note that the levels were chosen *with* run text on the calibration
split, so the "off" arm runs at levels not chosen for it: it shows the cost, not a tuned rival.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from screen_cascade import Labels, real_labels, synthetic  # the sibling benchmark

from mhsafety.conversation import Conversation
from mhsafety.judges.embedded import EmbeddedJudge
from mhsafety.realtext import load_named_set, rallypoint_posts
from mhsafety.taxonomy import CATEGORIES, Category


def run(judge: EmbeddedJudge, batch: list[Conversation]) -> tuple[list[set[Category]], float, int]:
    """Flags, seconds and encoder texts (cache misses), in batches of 256 as the audit does."""
    assert judge.encoder is not None
    judge.encoder.clear_cache()
    before = judge.encoder.encoded_count
    started = time.perf_counter()
    flags: list[set[Category]] = []
    for start in range(0, len(batch), 256):
        flags += [
            {c for c in CATEGORIES if v.flags[c]} for v in judge.screen(batch[start : start + 256])
        ]
    return flags, time.perf_counter() - started, judge.encoder.encoded_count - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--skip-reserved", action="store_true")
    args = parser.parse_args(argv)

    on = EmbeddedJudge()
    assert on.calibration is not None and on.calibration.run_text
    off = EmbeddedJudge(
        lexicon=on.lexicon,
        encoder=on.encoder,
        head=on.head,
        calibration=replace(on.calibration, run_text=False),
    )
    sets: list[tuple[str, list[Conversation], list[Labels]]] = []
    for name in ("reddit-test-turns", "chatterbot-test"):
        conversations = load_named_set(name)
        sets.append((name, conversations, [real_labels(c) for c in conversations]))
    if args.synthetic:
        sets.append((f"synthetic (seed {args.seed})", *synthetic(args.synthetic, args.seed)))
    if not args.skip_reserved:
        conversations = [p.conversation(turns=True) for p in rallypoint_posts()]
        sets.append(
            ("rallypoint turns (reserved)", conversations, [real_labels(c) for c in conversations])
        )

    print(
        f"{'set':30s} {'n':>6s} {'on/s':>7s} {'off/s':>7s} {'x':>5s} {'texts on':>9s} "
        f"{'off':>7s} {'flagged on':>10s} {'off':>5s}"
    )
    lines: list[str] = []
    for name, conversations, labels in sets:
        flags_off, seconds_off, texts_off = run(off, conversations)
        flags_on, seconds_on, texts_on = run(on, conversations)
        n = len(conversations)
        print(
            f"{name:30s} {n:6d} {n / seconds_on:7.1f} {n / seconds_off:7.1f} "
            f"{seconds_off / seconds_on:5.2f} {texts_on:9d} {texts_off:7d} "
            f"{sum(1 for f in flags_on if f):10d} {sum(1 for f in flags_off if f):5d}"
        )
        for category in CATEGORIES:
            positives = [i for i, lab in enumerate(labels) if lab[category]]
            negatives = [i for i, lab in enumerate(labels) if lab[category] is False]
            if not positives:
                continue
            hit_on = sum(1 for i in positives if category in flags_on[i])
            hit_off = sum(1 for i in positives if category in flags_off[i])
            fp_on = sum(1 for i in negatives if category in flags_on[i])
            fp_off = sum(1 for i in negatives if category in flags_off[i])
            lines.append(
                f"  {name} {category}: recall on {hit_on}/{len(positives)} off "
                f"{hit_off}/{len(positives)}; false flags on {fp_on} off {fp_off}"
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
