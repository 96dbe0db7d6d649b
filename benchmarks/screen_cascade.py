"""The cascade against embedding everything: what it settles, what it loses, how much faster.

Usage::

    python benchmarks/screen_cascade.py [--synthetic 4000] [--skip-reserved]

For each held-out set it screens every conversation twice, with ``embedded`` (every message
embedded) and with ``embedded-cascade`` (the distilled prefilter settles clearly ordinary
conversations first; ``judges/prefilter.py``), and prints:

* the share of conversations settled without the encoder;
* **lost flags**: conversations the full screen flags that the cascade does not (the cascade
  can only remove flags, so this is the whole difference), per category;
* recall per category of both against the set's labels (equal when nothing is lost);
* conversations per second of both, in the same run, and their ratio.

Sets: the Reddit test split as chat-length turns and as whole posts, the ChatterBot and
Do-Not-Answer test splits, a synthetic deployment log from ``mhsafety synth``'s generator
(its seed differs from ``make demo``'s), and the reserved RallyPoint set (evaluation only;
``--skip-reserved`` leaves it out). None of these was read to train or set the prefilter.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from mhsafety.conversation import Conversation
from mhsafety.judges.embedded import EmbeddedJudge, EmbeddedJudgeConfig
from mhsafety.judges.evaluation import gold_labels, labelled_categories
from mhsafety.realtext import load_named_set
from mhsafety.synth import generate
from mhsafety.taxonomy import CATEGORIES, Category

Labels = dict[Category, bool | None]


def real_labels(conversation: Conversation) -> Labels:
    """A real set's labels: None for a category its source does not speak for."""
    gold = gold_labels(conversation)
    known = labelled_categories(conversation)
    return {c: gold[c] if c in known else None for c in CATEGORIES}


def synthetic(n: int, seed: int) -> tuple[list[Conversation], list[Labels]]:
    """A synthetic deployment log and its ground truth."""
    conversations: list[Conversation] = []
    labels: list[Labels] = []
    for record, truth in generate(n, seed=seed):
        conversations.append(Conversation.model_validate(record))
        labels.append({c: truth.risk[c] for c in CATEGORIES})
    return conversations, labels


def timed(
    screen: Callable[[list[Conversation]], list[set[Category]]], batch: list[Conversation]
) -> tuple[list[set[Category]], float]:
    """Flags per conversation and the seconds it took (batches of 256, as the audit does)."""
    started = time.perf_counter()
    flags: list[set[Category]] = []
    for start in range(0, len(batch), 256):
        flags.extend(screen(batch[start : start + 256]))
    return flags, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=4000, help="synthetic conversations")
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--skip-reserved", action="store_true")
    args = parser.parse_args(argv)

    full = EmbeddedJudge()
    cascade = EmbeddedJudge(
        lexicon=full.lexicon,
        encoder=full.encoder,
        head=full.head,
        calibration=full.calibration,
        config=EmbeddedJudgeConfig(cascade=True),
    )
    assert cascade.prefilter is not None
    print(f"prefilter level {cascade.prefilter.level} (sha256 {cascade.prefilter.sha256[:12]}…)")

    def runner(judge: EmbeddedJudge) -> Callable[[list[Conversation]], list[set[Category]]]:
        return lambda batch: [{c for c in CATEGORIES if v.flags[c]} for v in judge.screen(batch)]

    sets: list[tuple[str, list[Conversation], list[Labels]]] = []
    for name in ("reddit-test-turns", "reddit-test", "chatterbot-test", "donotanswer-test"):
        conversations = load_named_set(name)
        sets.append((name, conversations, [real_labels(c) for c in conversations]))
    if args.synthetic:
        sets.append((f"synthetic (seed {args.seed})", *synthetic(args.synthetic, args.seed)))
    if not args.skip_reserved:
        conversations = load_named_set("rallypoint")
        labels = [real_labels(c) for c in conversations]
        sets.append(("rallypoint (reserved)", conversations, labels))

    columns = ("n", "settled", "lost", "full/s", "casc/s", "x")
    widths = (6, 8, 5, 7, 7, 5)
    print(f"{'set':28s} " + " ".join(f"{c:>{w}s}" for c, w in zip(columns, widths, strict=True)))
    lines: list[str] = []
    for name, conversations, labels in sets:
        # both judges share one encoder: each arm starts from a cold embedding cache
        assert full.encoder is not None
        full.encoder.clear_cache()
        cascaded, cascade_seconds = timed(runner(cascade), conversations)
        full.encoder.clear_cache()
        everything, full_seconds = timed(runner(full), conversations)
        settled, _ = cascade.settled(conversations)
        lost = [e - c for e, c in zip(everything, cascaded, strict=True)]
        gained = sum(1 for e, c in zip(everything, cascaded, strict=True) if c - e)
        n = len(conversations)
        print(
            f"{name:28s} {n:6d} {sum(settled) / n:8.1%} {sum(1 for x in lost if x):5d} "
            f"{n / full_seconds:7.1f} {n / cascade_seconds:7.1f} "
            f"{full_seconds / cascade_seconds:5.2f}"
        )
        if gained:
            lines.append(f"  {name}: {gained} conversations flagged by the cascade only (a bug)")
        for category in CATEGORIES:
            positives = [i for i, lab in enumerate(labels) if lab[category]]
            lost_here = sum(1 for x in lost if category in x)
            if not positives and not lost_here:
                continue
            hit_full = sum(1 for i in positives if category in everything[i])
            hit_cascade = sum(1 for i in positives if category in cascaded[i])
            recall = (
                f"recall full {hit_full}/{len(positives)} cascade {hit_cascade}/{len(positives)}"
                if positives
                else "no labelled positives"
            )
            lines.append(f"  {name} {category}: {recall}; flags lost {lost_here}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
