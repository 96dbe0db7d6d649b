"""The screen's decision levels, set on real labelled text (``screen_calibration.json``).

The embedded judge decides at two levels per category:

* **message**: one user message on its own (the larger of the lexicon signal and the encoder's
  probability, the highest over a long message's windows) or, with ``run_text``, consecutive
  user messages that fit one encoder window read together as one text, and
* **conversation**: the pooled embedding of a run of consecutive user messages (up to
  ``window_messages``; at least two), so risk that only shows over several turns is caught
  without scoring every short sentence as if it were a whole disclosure.

There are two sets of levels: ``flag`` (send the conversation to clinician review) and ``guard``
(replace a model's reply with a crisis message), which needs stronger evidence. Both are chosen
by ``scripts/calibrate_screen.py`` on the *calibration* split of the real Reddit posts, never on
the test split or the reserved RallyPoint set. The file is pinned in :mod:`mhsafety.judges.pins`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mhsafety.judges.embedding import ModelFileError, verify_file
from mhsafety.judges.head import LinearHead
from mhsafety.taxonomy import CATEGORIES, Category

FORMAT = "mhsafety-screen-calibration/1"
RunWeighting = Literal["uniform", "tokens"]
LEXICON_FLAG_SIGNAL = 0.99
"""Lexicon signal of a coded risk term; every message level must stay at or below it, so an
explicit or coded disclosure the lexicon finds is always flagged, whatever the encoder says."""
Purpose = Literal["flag", "guard"]


@dataclass(frozen=True)
class Levels:
    """Message and conversation levels per category."""

    message: dict[Category, float]
    conversation: dict[Category, float]


@dataclass(frozen=True)
class ScreenCalibration:
    """Decision levels of the embedded judge and where they came from."""

    flag: Levels
    guard: Levels
    window_messages: int
    encoder_sha256: str
    head: LinearHead | None = None
    """A head refitted on real text over the pinned encoder's embeddings; None keeps the
    encoder's own."""
    metadata: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    run_weighting: RunWeighting = "uniform"
    """How a run of user messages is pooled: each message's embedding counts once
    (``uniform``) or by its number of word pieces (``tokens``), as if the run were read as one
    text, so a three-word follow-up barely moves the run."""
    followup_min_tokens: int = 0
    """A user message after the first with fewer word pieces than this, and no lexicon hit,
    is not tested on its own: what "what would you do in my place" means depends on what came
    before, so it counts only inside its runs. 0 tests every message alone."""
    run_text: bool = False
    """Also read consecutive user messages that fit one encoder window together as one text
    (the encoder sees them side by side, not pooled) and test it at the **message** level: a
    disclosure spread over three short turns reads as it would in one message."""

    def levels(self, purpose: Purpose) -> Levels:
        """The levels for flagging or for the guard."""
        return self.flag if purpose == "flag" else self.guard

    @classmethod
    def from_head(cls, head: LinearHead, window_messages: int = 6) -> ScreenCalibration:
        """One level for everything: the head's own thresholds (the frozen baseline)."""
        levels = Levels(dict(head.thresholds), dict(head.thresholds))
        return cls(levels, levels, window_messages, "", None, {"source": "head thresholds"})

    def to_json(self) -> dict[str, Any]:
        """The serialisable form."""

        def side(levels: Levels) -> dict[str, dict[str, float]]:
            return {
                "message": {str(c): round(levels.message[c], 4) for c in CATEGORIES},
                "conversation": {str(c): round(levels.conversation[c], 4) for c in CATEGORIES},
            }

        return {
            "format": FORMAT,
            "encoder_sha256": self.encoder_sha256,
            "window_messages": self.window_messages,
            "flag": side(self.flag),
            "guard": side(self.guard),
            "head": self.head.to_json() if self.head is not None else None,
            "run_weighting": self.run_weighting,
            "followup_min_tokens": self.followup_min_tokens,
            "run_text": self.run_text,
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], sha256: str = "") -> ScreenCalibration:
        """Build from the serialised form, checking every level."""
        if data.get("format") != FORMAT:
            raise ModelFileError(f"unknown calibration format {data.get('format')!r}")

        def side(raw: dict[str, Any], name: str) -> Levels:
            out: list[dict[Category, float]] = []
            for level in ("message", "conversation"):
                values = {Category(c): float(v) for c, v in raw[level].items()}
                if set(values) != set(CATEGORIES):
                    raise ModelFileError(f"calibration {name}.{level} must name every category")
                if any(not 0.0 < v <= 1.0 for v in values.values()):
                    raise ModelFileError(f"calibration {name}.{level} levels must be in (0, 1]")
                out.append(values)
            if any(v > LEXICON_FLAG_SIGNAL for v in out[0].values()):
                raise ModelFileError(
                    f"calibration {name}.message levels above {LEXICON_FLAG_SIGNAL} would let "
                    "the encoder overrule a coded or explicit lexicon hit"
                )
            return Levels(out[0], out[1])

        flag, guard = side(data["flag"], "flag"), side(data["guard"], "guard")
        window = int(data["window_messages"])
        if window < 2:
            raise ModelFileError("calibration window_messages must be at least 2")
        head = data.get("head")
        weighting = data.get("run_weighting", "uniform")
        if weighting not in ("uniform", "tokens"):
            raise ModelFileError(f"calibration run_weighting {weighting!r} is not uniform|tokens")
        followup = int(data.get("followup_min_tokens", 0))
        if followup < 0:
            raise ModelFileError("calibration followup_min_tokens must be >= 0")
        run_text = data.get("run_text", False)
        if not isinstance(run_text, bool):
            raise ModelFileError("calibration run_text must be true or false")
        return cls(
            flag,
            guard,
            window,
            str(data["encoder_sha256"]),
            LinearHead.from_json(head, sha256) if head else None,
            dict(data.get("metadata", {})),
            sha256,
            weighting,
            followup,
            run_text,
        )

    @classmethod
    def load(cls, path: Path, expected_sha256: str) -> ScreenCalibration:
        """Load a calibration file, refusing one whose sha256 is not the pinned one."""
        verify_file(path, expected_sha256, "screen calibration")
        return cls.from_json(json.loads(path.read_text("utf-8")), expected_sha256)


__all__ = ["LEXICON_FLAG_SIGNAL", "Levels", "RunWeighting", "ScreenCalibration"]
