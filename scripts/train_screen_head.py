"""Train the embedded judge's per-category heads on the labelled training set.

Usage::

    python scripts/train_screen_head.py            # writes data/models/screen_head.json + pin

Embeds ``src/mhsafety/data/screen/train.jsonl`` with the pinned MiniLM-int8 encoder, fits an
L2 logistic regression per category, picks each category's threshold on out-of-fold
predictions (5-fold, seeded) to maximise F2 (recall weighted over precision, as a screen
should be), and writes the weights, thresholds and the cross-validated figures. The held-out
evaluation set (``eval.jsonl``) is never read here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np

from mhsafety.judges.embedding import MiniLMEncoder
from mhsafety.judges.head import LinearHead, fit_logistic
from mhsafety.taxonomy import CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "mhsafety" / "data"
TRAIN = DATA / "screen" / "train.jsonl"
HEAD = DATA / "models" / "screen_head.json"
PINS = ROOT / "src" / "mhsafety" / "judges" / "pins.py"
FOLDS = 5
BETA = 2.0  # default; --beta overrides


def best_threshold(
    probs: np.ndarray, truth: np.ndarray, beta: float = BETA
) -> tuple[float, dict[str, float]]:
    """The threshold with the highest F-beta on out-of-fold probabilities."""
    best = (0.5, -1.0, 0.0, 0.0)
    for threshold in np.arange(0.05, 0.96, 0.01):
        predicted = probs >= threshold
        tp = float((predicted & truth).sum())
        precision = tp / max(float(predicted.sum()), 1.0)
        recall = tp / max(float(truth.sum()), 1.0)
        if precision + recall == 0:
            continue
        f_beta = (1 + beta**2) * precision * recall / (beta**2 * precision + recall)
        if f_beta > best[1]:
            best = (float(threshold), f_beta, precision, recall)
    threshold, f_beta, precision, recall = best
    return round(threshold, 2), {
        "oof_precision": round(precision, 4),
        "oof_recall": round(recall, 4),
        f"oof_f{beta:g}": round(f_beta, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=TRAIN)
    parser.add_argument("--out", type=Path, default=HEAD)
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--beta", type=float, default=BETA, help="F-beta for thresholds")
    parser.add_argument("--no-pin", action="store_true", help="do not rewrite judges/pins.py")
    args = parser.parse_args(argv)

    rows = [json.loads(line) for line in args.train.read_text("utf-8").splitlines() if line]
    texts = [r["text"] for r in rows]
    labels = np.array([[c in r["labels"] for c in CATEGORIES] for r in rows], dtype=bool)
    print(f"training set: {len(rows)} messages; positives per category:", end=" ")
    print(", ".join(f"{c}={int(labels[:, i].sum())}" for i, c in enumerate(CATEGORIES)))

    encoder = MiniLMEncoder()
    features = encoder.encode(texts)
    rng = np.random.default_rng(args.seed)
    fold_of = rng.permutation(len(rows)) % FOLDS

    weights, biases, thresholds, metrics = [], [], {}, {}
    for i, category in enumerate(CATEGORIES):
        oof = np.zeros(len(rows))
        for fold in range(FOLDS):
            train, test = fold_of != fold, fold_of == fold
            w, b = fit_logistic(features[train], labels[train, i], l2=args.l2)
            oof[test] = 1.0 / (1.0 + np.exp(-(features[test].astype(np.float64) @ w + b)))
        threshold, figures = best_threshold(oof, labels[:, i], args.beta)
        w, b = fit_logistic(features, labels[:, i], l2=args.l2)
        weights.append(w)
        biases.append(b)
        thresholds[category] = threshold
        metrics[str(category)] = {"threshold": threshold, **figures}
        print(
            f"  {category:16s} threshold {threshold:.2f}  "
            + "  ".join(f"{k} {v:.3f}" for k, v in figures.items())
        )

    head = LinearHead(
        categories=CATEGORIES,
        weights=np.vstack(weights),
        bias=np.array(biases),
        thresholds=thresholds,
        metadata={
            "trained_on": str(args.train.relative_to(ROOT))
            if args.train.is_relative_to(ROOT)
            else str(args.train),
            "training_sha256": hashlib.sha256(args.train.read_bytes()).hexdigest(),
            "training_messages": len(rows),
            "encoder": encoder.info.name,
            "encoder_sha256": encoder.info.model_sha256,
            "l2": args.l2,
            "folds": FOLDS,
            "threshold_rule": f"max F{args.beta:g} on out-of-fold predictions",
            "cross_validation": metrics,
            "trained": dt.date.today().isoformat(),
        },
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(head.to_json(), indent=None) + "\n", encoding="utf-8")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest})")
    if not args.no_pin:
        text = PINS.read_text("utf-8")
        text = re.sub(r'SCREEN_HEAD_SHA256 = "[^"]*"', f'SCREEN_HEAD_SHA256 = "{digest}"', text)
        PINS.write_text(text, "utf-8")
        print(f"pinned in {PINS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
