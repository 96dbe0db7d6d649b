"""Distil the cascade's first stage from the pinned full screen (``judges/prefilter.py``).

Usage::

    python scripts/train_screen_prefilter.py   # writes data/models/screen_prefilter.{json,npy}

What it reads: the **train** splits of the real sets (Reddit posts as whole posts and as
chat-length turns, ChatterBot dialogues, Do-Not-Answer prompts) and ``data/screen/train.jsonl``
to fit; the **calibration** splits to set the level. The test splits, the project's
``eval.jsonl`` and the reserved RallyPoint set are never read.

How:

1. The full screen (the pinned encoder and calibration, lexicon on) screens every training
   conversation. Targets: a user message is positive when the screen's decision at that
   message reached a level (alone or as the end of a run); a conversation's joined user text is
   positive when the screen flagged the conversation or its label says it carries risk.
2. A logistic model (scikit-learn, L2, balanced classes) over hashed word and character
   n-grams learns those targets.
3. On the calibration conversations the level is set to ``--margin`` times the lowest
   prefilter score of any conversation the full screen flagged without a lexicon hit, so no
   flagged conversation of the calibration split would have been settled. (Conversations with
   a lexicon hit are never settled, so they do not bound the level.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from mhsafety.conversation import Conversation
from mhsafety.hashing import sha256_file
from mhsafety.judges.embedded import EmbeddedJudge
from mhsafety.judges.prefilter import (
    PREFILTER_FILE,
    WEIGHTS_FILE,
    NgramFeatures,
    Prefilter,
    conversation_texts,
)
from mhsafety.judges.screen_model import models_dir
from mhsafety.realtext import (
    RealPost,
    chatterbot_dialogues,
    donotanswer_prompts,
    reddit_posts,
)
from mhsafety.taxonomy import CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "src" / "mhsafety" / "judges" / "pins.py"
TRAIN = ROOT / "src" / "mhsafety" / "data" / "screen" / "train.jsonl"


def project_conversations() -> list[tuple[Conversation, bool]]:
    """``train.jsonl``'s messages, each as a one-message conversation with its risk label."""
    out: list[tuple[Conversation, bool]] = []
    for number, line in enumerate(TRAIN.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        conversation = Conversation.model_validate(
            {"id": f"train-{number}", "messages": [{"role": "user", "content": row["text"]}]}
        )
        out.append((conversation, bool(row["labels"])))
    return out


def real_conversations(split: str) -> list[tuple[Conversation, bool, str]]:
    """The real sets' conversations of one split, with 'carries risk' and the source name."""
    posts: list[RealPost] = list(reddit_posts(split))
    out: list[tuple[Conversation, bool, str]] = []
    for post in posts:
        risk = any(post.labels.values())
        out.append((post.conversation(turns=True), risk, "reddit turns"))
        out.append((post.conversation(), risk, "reddit posts"))
    for dialogue in chatterbot_dialogues(split):
        out.append((dialogue.conversation(), False, "chatterbot"))
    for request in donotanswer_prompts(split):
        out.append((request.conversation(), any(request.labels.values()), "do-not-answer"))
    return out


def targets(
    judge: EmbeddedJudge, conversations: list[Conversation], risk: list[bool]
) -> tuple[list[str], list[bool], list[bool]]:
    """Training texts and targets (see the module docstring), plus each conversation's flag."""
    levels = judge.levels("flag")
    texts: list[str] = []
    labels: list[bool] = []
    flagged: list[bool] = []
    for conversation, verdict, carries in zip(
        conversations, judge.screen(conversations), risk, strict=True
    ):
        for score in verdict.messages:
            # a message's own decision (without the runs it ends): a run's decision is the
            # joined text's target (a short follow-up that ends a flagged run reads as
            # ordinary chat on its own)
            decided = any(score.combined[c] >= levels.message[c] for c in CATEGORIES)
            texts.append(conversation.messages[score.message].content)
            labels.append(decided)
        pieces = conversation_texts(conversation)
        if len(pieces) > 1:
            texts.append(pieces[-1])
            labels.append(verdict.flagged_any or carries)
        flagged.append(verdict.flagged_any)
    return texts, labels, flagged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=models_dir() / PREFILTER_FILE)
    parser.add_argument("--c", type=float, default=4.0, help="inverse L2 strength")
    parser.add_argument("--margin", type=float, default=0.5)
    parser.add_argument("--no-pin", action="store_true", help="do not rewrite judges/pins.py")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    judge = EmbeddedJudge()
    assert judge.encoder is not None and judge.calibration is not None
    features = NgramFeatures()

    train = real_conversations("train")
    project = project_conversations()
    conversations = [c for c, _, _ in train] + [c for c, _ in project]
    risk = [r for _, r, _ in train] + [r for _, r in project]
    print(f"screening {len(conversations)} training conversations with the full screen")
    texts, labels, _ = targets(judge, conversations, risk)
    y = np.asarray(labels)
    print(f"fitting on {len(texts)} texts ({int(y.sum())} positive)")
    model = LogisticRegression(C=args.c, class_weight="balanced", max_iter=3000)
    model.fit(features.transform(texts), y)
    weights = model.coef_.ravel().astype(np.float32)
    bias = float(model.intercept_[0])

    calibration = real_conversations("calibration")
    cal_conversations = [c for c, _, _ in calibration]
    cal_risk = np.asarray([r for _, r, _ in calibration])
    sources = np.asarray([s for _, _, s in calibration])
    cal_flagged = np.asarray([v.flagged_any for v in judge.screen(cal_conversations)])
    provisional = Prefilter(
        weights, bias, 0.5, judge.encoder.info.model_sha256, judge.calibration.sha256
    )
    scores = provisional.scores(cal_conversations)
    assert judge.lexicon is not None
    lexicon = judge.lexicon
    any_hit = np.asarray(
        [any(lexicon.scan(m.content) for _, m in c.user_messages()) for c in cal_conversations]
    )
    guarded = cal_flagged & ~any_hit
    lowest = float(scores[guarded].min())
    level = round(args.margin * lowest, 6)
    settled = (scores < level) & ~any_hit
    figures: dict[str, Any] = {
        "lowest_score_flagged_without_lexicon_hit": round(lowest, 6),
        "lowest_score_with_risk_label": round(float(scores[cal_risk].min()), 6),
        "margin": args.margin,
        "conversations": len(cal_conversations),
        "flagged_by_full_screen": int(cal_flagged.sum()),
        "flagged_without_lexicon_hit": int(guarded.sum()),
        "flagged_settled": int((settled & cal_flagged).sum()),
        "risk_labelled_settled": int((settled & cal_risk).sum()),
        "settled_share": round(float(settled.mean()), 4),
        "settled_share_by_source": {
            s: round(float(settled[sources == s].mean()), 4) for s in sorted(set(sources))
        },
    }
    print(json.dumps(figures, indent=1))

    prefilter = Prefilter(
        weights,
        bias,
        level,
        judge.encoder.info.model_sha256,
        judge.calibration.sha256,
        features,
        {
            "trained_on": (
                "train splits of the Reddit posts (turns and whole posts), ChatterBot dialogues "
                "and Do-Not-Answer prompts, and data/screen/train.jsonl; targets from the full "
                "screen's decisions"
            ),
            "lexicon_version": lexicon.version,
            "training_texts": len(texts),
            "training_positives": int(y.sum()),
            "l2_c": args.c,
            "level_set_on": "calibration splits of the same sets",
            "figures_on_calibration_split": figures,
            "seconds": round(time.perf_counter() - started, 1),
            "date": dt.date.today().isoformat(),
            "note": "the test splits, eval.jsonl and the reserved RallyPoint set were not read",
        },
    )
    weights_path = args.out.parent / WEIGHTS_FILE
    np.save(weights_path, weights, allow_pickle=False)
    weights_sha = sha256_file(weights_path)
    args.out.write_text(
        json.dumps(prefilter.to_json(weights_sha), indent=1) + "\n", encoding="utf-8"
    )
    digest = sha256_file(args.out)
    print(f"wrote {args.out} (sha256 {digest}) and {weights_path} (sha256 {weights_sha})")
    if not args.no_pin:
        text = PINS.read_text("utf-8")
        line = f'SCREEN_PREFILTER_SHA256 = "{digest}"'
        if "SCREEN_PREFILTER_SHA256" in text:
            text = re.sub(r'SCREEN_PREFILTER_SHA256 = "[^"]*"', line, text)
        else:
            text = text.rstrip("\n") + "\n" + line + "\n"
        PINS.write_text(text, "utf-8")
        print(f"pinned in {PINS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
