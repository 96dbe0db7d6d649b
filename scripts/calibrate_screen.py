"""Set the embedded screen's decision levels on the calibration split of real Reddit posts.

Usage::

    python scripts/calibrate_screen.py              # writes data/models/screen_calibration.json
    python scripts/calibrate_screen.py --refit-head # also refit the linear head on real text

What it reads: the *calibration* split of the Reddit posts (``mhsafety.realtext``, split by
author), both as whole posts and cut into chat-length turns; with ``--refit-head`` also the
*train* split (whole posts, plus the turns of control posts as hard negatives), the train split
of the ChatterBot dialogues (short ordinary chat, hard negatives), the train split of the
Do-Not-Answer prompts (harmful-sounding requests without personal risk; self-harm requests as
positives for their category) and the project's ``data/screen/train.jsonl``. The test split
and the reserved RallyPoint set are never read.

What it chooses, per category, from conversation-level features (the highest combined message
score, which with ``--run-text`` includes packed runs of messages read as one text, and the
highest pooled-run score of each conversation):

* **flag** levels (send to review): the pair (message level, conversation level) with the
  highest recall at precision >= ``--precision`` on the Reddit calibration conversations; where no
  pair reaches it, the pair with the highest F1. Categories without real positives (NSSI) keep
  the encoder's own threshold, raised until control conversations are flagged at most
  ``--control-rate`` of the time.
* **guard** levels (replace a reply): the lowest levels at or above the flag levels at which
  at most ``--guard-control-rate`` of the control conversations would get a crisis message.

Control conversations are the Reddit control posts of the calibration split and the calibration
splits of the ChatterBot dialogues (short ordinary chat) and of the Do-Not-Answer requests
without personal risk.

Message levels are capped at the coded-lexicon signal so lexicon hits always flag.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mhsafety.hashing import sha256_file
from mhsafety.judges.calibration import (
    LEXICON_FLAG_SIGNAL,
    Levels,
    RunWeighting,
    ScreenCalibration,
)
from mhsafety.judges.embedded import EmbeddedJudge
from mhsafety.judges.head import LinearHead, fit_logistic
from mhsafety.judges.level_search import (
    best_recall_levels,
    conversation_features,
    flagged_any,
    lowest_quiet,
    operating,
)
from mhsafety.judges.screen_model import CALIBRATION_FILE, load_screen_model, models_dir
from mhsafety.realtext import (
    RealPost,
    chat_turns,
    chatterbot_dialogues,
    donotanswer_prompts,
    reddit_posts,
    sets_spec,
)
from mhsafety.taxonomy import CATEGORIES, Category

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "src" / "mhsafety" / "judges" / "pins.py"
TRAIN = ROOT / "src" / "mhsafety" / "data" / "screen" / "train.jsonl"
WINDOW_MESSAGES = 6
RUN_WEIGHTING: RunWeighting = "tokens"
FOLLOWUP_MIN_TOKENS = 10
"""A follow-up of fewer word pieces (about 8 words) without a lexicon hit counts only inside
its runs: 3-8-word follow-ups carry too little to be read alone (ChatterBot's short chat)."""
RUN_TEXT = True
"""Read consecutive user messages that fit one encoder window as one text, at the message
level (on the calibration split: suicide recall on turns 0.82 -> 0.86 and eating disorder
0.78 -> 0.97 at precision >= 0.85, with the pooled runs kept)."""


def refit_head(encoder: Any, base: LinearHead, l2: float) -> LinearHead:
    """A linear head over the encoder's embeddings, fitted on real and project training text."""
    rows = [json.loads(line) for line in TRAIN.read_text("utf-8").splitlines() if line.strip()]
    project_x = encoder.encode([r["text"] for r in rows])
    project_y = np.array([[str(c) in r["labels"] for c in CATEGORIES] for r in rows])
    posts = list(reddit_posts("train"))
    judge = EmbeddedJudge(encoder=encoder, head=base)
    post_x, _ = judge.embed([p.text for p in posts])
    control_turns = [
        t for p in posts if len(p.labelled) == len(CATEGORIES) for t in chat_turns(p.text)
    ]
    turn_x = encoder.encode(control_turns)
    chat_turns_ = [t for d in chatterbot_dialogues("train") for t in d.user_turns]
    chat_x = encoder.encode(chat_turns_)
    requests = list(donotanswer_prompts("train"))
    request_x = encoder.encode([p.text for p in requests])
    weights, biases = [], []
    for column, category in enumerate(CATEGORIES):
        xs, ys = [project_x], [project_y[:, column]]
        keep = [i for i, p in enumerate(posts) if category in p.labelled]
        xs.append(post_x[keep])
        ys.append(np.array([posts[i].labels.get(category, False) for i in keep]))
        xs.append(turn_x)
        ys.append(np.zeros(len(control_turns), dtype=bool))
        xs.append(chat_x)
        ys.append(np.zeros(len(chat_turns_), dtype=bool))
        speaking = [i for i, p in enumerate(requests) if category in p.labelled]
        xs.append(request_x[speaking])
        ys.append(np.array([requests[i].labels.get(category, False) for i in speaking]))
        w, b = fit_logistic(np.vstack(xs).astype(np.float32), np.concatenate(ys), l2=l2)
        weights.append(w)
        biases.append(b)
    return LinearHead(
        CATEGORIES,
        np.vstack(weights),
        np.array(biases),
        dict(base.thresholds),
        {
            "trained_on": (
                "data/screen/train.jsonl + Reddit train split (posts; control turns)"
                " + ChatterBot train split (user turns, no risk)"
                " + Do-Not-Answer train split (requests; self-harm ones for their category)"
            ),
            "training_sha256": sha256_file(TRAIN),
            "reddit_posts": len(posts),
            "control_turns": len(control_turns),
            "chatterbot_turns": len(chat_turns_),
            "donotanswer_prompts": len(requests),
            "l2": l2,
        },
    )


def flag_levels(
    message: npt.NDArray[np.float64],
    run: npt.NDArray[np.float64],
    truth: npt.NDArray[np.bool_],
    labelled: npt.NDArray[np.bool_],
    min_precision: float,
) -> tuple[float, float, dict[str, Any]]:
    """The flag levels of one category (highest recall at the precision floor) and their
    figures on the calibration rows."""
    chosen = best_recall_levels(message, run, truth, labelled, min_precision)
    figures: dict[str, Any] = {
        "precision": chosen.precision,
        "recall": chosen.recall,
        "tp": chosen.tp,
        "fp": chosen.fp,
        "fn": chosen.fn,
        "rule": (
            f"max recall at precision >= {min_precision}"
            if chosen.floor_met
            else "max F1 (floor not met)"
        ),
    }
    return chosen.message_level, chosen.conversation_level, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=models_dir() / CALIBRATION_FILE)
    parser.add_argument("--precision", type=float, default=0.85)
    parser.add_argument("--control-rate", type=float, default=0.01)
    parser.add_argument("--guard-control-rate", type=float, default=0.01)
    parser.add_argument("--refit-head", action="store_true")
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--run-weighting", choices=("uniform", "tokens"), default=RUN_WEIGHTING)
    parser.add_argument("--followup-min-tokens", type=int, default=FOLLOWUP_MIN_TOKENS)
    parser.add_argument(
        "--run-text",
        action=argparse.BooleanOptionalAction,
        default=RUN_TEXT,
        help="read packed runs of user messages as one text, at the message level",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not rewrite judges/pins.py")
    args = parser.parse_args(argv)

    encoder, head = load_screen_model("finetuned")
    if args.refit_head:
        print("refitting the linear head on the Reddit train split and train.jsonl")
        head = refit_head(encoder, head, args.l2)
    provisional = ScreenCalibration(
        Levels(dict(head.thresholds), dict(head.thresholds)),
        Levels(dict(head.thresholds), dict(head.thresholds)),
        WINDOW_MESSAGES,
        encoder.info.model_sha256,
        head if args.refit_head else None,
        run_weighting=args.run_weighting,
        followup_min_tokens=args.followup_min_tokens,
        run_text=args.run_text,
    )
    judge = EmbeddedJudge(encoder=encoder, head=head, calibration=provisional)
    posts: list[RealPost] = list(reddit_posts("calibration"))
    chats: list[RealPost] = list(chatterbot_dialogues("calibration"))
    requests: list[RealPost] = list(donotanswer_prompts("calibration"))
    conversations = (
        [p.conversation(turns=True) for p in posts]
        + [p.conversation() for p in posts]
        + [d.conversation() for d in chats]
        + [r.conversation() for r in requests]
    )
    print(
        f"calibration split: {len(posts)} Reddit posts, scored as turns and as whole posts, "
        f"{len(chats)} ChatterBot dialogues (ordinary short chat) and {len(requests)} "
        "Do-Not-Answer requests"
    )
    message, run = conversation_features(judge, conversations)
    every = [*posts, *posts, *chats, *requests]
    truth = np.array([[p.labels.get(c, False) for c in CATEGORIES] for p in every])
    labelled = np.array([[c in p.labelled for c in CATEGORIES] for p in every])
    # precision and recall are chosen on the Reddit rows (their own mix of risk and controls);
    # every "how often does ordinary chat get flagged / a crisis message" level counts the
    # ChatterBot dialogues as controls too
    reddit = np.arange(len(conversations)) < 2 * len(posts)
    controls = labelled.all(axis=1) & ~truth.any(axis=1)
    chat_rows = np.zeros(len(conversations), dtype=bool)
    chat_rows[2 * len(posts) : 2 * len(posts) + len(chats)] = True

    flag_m: dict[Category, float] = {}
    flag_c: dict[Category, float] = {}
    guard_m: dict[Category, float] = {}
    guard_c: dict[Category, float] = {}
    figures: dict[str, Any] = {}
    for column, category in enumerate(CATEGORIES):
        has_positives = bool((truth[:, column] & labelled[:, column] & reddit).any())
        if has_positives:
            tm, tc, fig = flag_levels(
                message[:, column],
                run[:, column],
                truth[:, column],
                labelled[:, column] & reddit,
                args.precision,
            )
        else:
            base = min(float(head.thresholds[category]), LEXICON_FLAG_SIGNAL)
            tm, tc = lowest_quiet(
                message[:, column], run[:, column], controls, args.control_rate, base, base
            )
            fig = {"rule": f"no real positives: controls flagged <= {args.control_rate}"}
        gm, gc = lowest_quiet(
            message[:, column], run[:, column], controls, args.guard_control_rate, tm, tc
        )
        flag_m[category], flag_c[category] = tm, tc
        guard_m[category], guard_c[category] = gm, gc
        flagged = (message[:, column] >= tm) | (run[:, column] >= tc)
        guarded = (message[:, column] >= gm) | (run[:, column] >= gc)
        fig |= {
            "controls_flagged": round(float(flagged[controls].mean()), 4),
            "controls_guarded": round(float(guarded[controls].mean()), 4),
            "chatterbot_flagged": round(float(flagged[chat_rows].mean()), 4),
            "chatterbot_guarded": round(float(guarded[chat_rows].mean()), 4),
        }
        if has_positives:
            guard = operating(
                message[:, column],
                run[:, column],
                truth[:, column],
                labelled[:, column] & reddit,
                gm,
                gc,
            )
            fig["guard_recall"] = round(guard.recall, 4)
        figures[str(category)] = {
            k: round(v, 4) if isinstance(v, float) else v for k, v in fig.items()
        }
        print(
            f"  {category:16s} flag {tm:.2f}/{tc:.2f} guard {gm:.2f}/{gc:.2f}  "
            + "  ".join(f"{k} {v}" for k, v in figures[str(category)].items())
        )
    any_flag = flagged_any(message, run, [(flag_m[c], flag_c[c]) for c in CATEGORIES])
    figures["controls_flagged_any"] = round(float(any_flag[controls].mean()), 4)
    figures["reddit_controls_flagged_any"] = round(float(any_flag[controls & reddit].mean()), 4)
    figures["chatterbot_flagged_any"] = round(float(any_flag[chat_rows].mean()), 4)
    print(
        "  control conversations flagged in any category: "
        f"{figures['controls_flagged_any']} (Reddit {figures['reddit_controls_flagged_any']}, "
        f"ChatterBot {figures['chatterbot_flagged_any']})"
    )

    spec = sets_spec()
    calibration = ScreenCalibration(
        Levels(flag_m, flag_c),
        Levels(guard_m, guard_c),
        WINDOW_MESSAGES,
        encoder.info.model_sha256,
        head if args.refit_head else None,
        {
            "calibrated_on": {
                "set": "reddit",
                "split": "calibration",
                "sha256": spec["sets"]["reddit"]["sha256"],
                "split_salt": spec["splits"]["salt"],
                "posts": len(posts),
                "views": "chat-length turns and whole posts",
                "controls_also": (
                    f"ChatterBot calibration split ({len(chats)} dialogues), Do-Not-Answer "
                    f"calibration split ({len(requests)} requests; its self-harm ones are "
                    "positives, not used for choosing levels)"
                ),
            },
            "precision_floor": args.precision,
            "control_rate": args.control_rate,
            "guard_control_rate": args.guard_control_rate,
            "figures_on_calibration_split": figures,
            "date": dt.date.today().isoformat(),
            "note": "never fitted on the Reddit test split or the reserved RallyPoint set",
        },
        run_weighting=args.run_weighting,
        followup_min_tokens=args.followup_min_tokens,
        run_text=args.run_text,
    )
    args.out.write_text(json.dumps(calibration.to_json(), indent=1) + "\n", encoding="utf-8")
    digest = sha256_file(args.out)
    print(f"wrote {args.out} (sha256 {digest})")
    if not args.no_pin:
        text = PINS.read_text("utf-8")
        text = re.sub(
            r'SCREEN_CALIBRATION_SHA256 = "[^"]*"', f'SCREEN_CALIBRATION_SHA256 = "{digest}"', text
        )
        PINS.write_text(text, "utf-8")
        print(f"pinned in {PINS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
