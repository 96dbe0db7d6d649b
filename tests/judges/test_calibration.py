"""The screen's decision levels: the pinned calibration file and how the judge applies it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from mhsafety.conversation import Conversation, parse_record
from mhsafety.judges.calibration import LEXICON_FLAG_SIGNAL, Levels, ScreenCalibration
from mhsafety.judges.embedded import EmbeddedJudge, EmbeddedJudgeConfig
from mhsafety.judges.embedding import EMBEDDING_DIM, EncoderInfo, ModelFileError
from mhsafety.judges.head import LinearHead
from mhsafety.judges.pins import SCREEN_CALIBRATION_SHA256
from mhsafety.judges.screen_model import CALIBRATION_FILE, load_screen_calibration, models_dir
from mhsafety.taxonomy import CATEGORIES, Category


def conversation(*user: str) -> Conversation:
    messages = []
    for text in user:
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    return parse_record({"id": "c", "messages": messages}, source="test", line=1)


def test_the_packaged_calibration_is_pinned_and_set_on_real_text() -> None:
    from mhsafety.judges.screen_model import load_finetuned

    encoder, head = load_finetuned()
    calibration = load_screen_calibration("finetuned", head)
    assert calibration.sha256 == SCREEN_CALIBRATION_SHA256
    assert calibration.encoder_sha256 == encoder.info.model_sha256
    assert calibration.metadata["calibrated_on"]["split"] == "calibration"
    for category in CATEGORIES:
        # the guard needs at least the evidence a review flag needs
        assert calibration.guard.message[category] >= calibration.flag.message[category]
        assert calibration.guard.conversation[category] >= calibration.flag.conversation[category]


def test_a_tampered_calibration_is_refused(tmp_path: Path) -> None:
    shutil.copy(models_dir() / CALIBRATION_FILE, tmp_path / CALIBRATION_FILE)
    head = LinearHead(CATEGORIES, np.zeros((4, EMBEDDING_DIM)), np.zeros(4), {}, {})
    load_screen_calibration("finetuned", head, tmp_path)
    data = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    data["flag"]["message"]["suicide"] = 0.2
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="sha256"):
        load_screen_calibration("finetuned", head, tmp_path)


def _raw(message: float = 0.9, window: int = 4) -> dict[str, object]:
    levels = {str(c): message for c in CATEGORIES}
    side = {"message": levels, "conversation": dict(levels)}
    return {
        "format": "mhsafety-screen-calibration/1",
        "encoder_sha256": "x",
        "window_messages": window,
        "flag": side,
        "guard": side,
    }


def test_levels_that_would_overrule_the_lexicon_are_refused() -> None:
    ScreenCalibration.from_json(_raw(LEXICON_FLAG_SIGNAL))
    with pytest.raises(ModelFileError, match="lexicon"):
        ScreenCalibration.from_json(_raw(LEXICON_FLAG_SIGNAL + 0.005))
    with pytest.raises(ModelFileError, match="window_messages"):
        ScreenCalibration.from_json(_raw(window=1))
    bad = _raw()
    del bad["flag"]["message"]["nssi"]  # type: ignore[index]
    with pytest.raises(ModelFileError, match="every category"):
        ScreenCalibration.from_json(bad)


# A two-word-vocabulary encoder: "risk" points one way, anything else the other. It makes the
# pooling arithmetic exact, so the run rule can be checked without a trained model.
RISK, OTHER = np.eye(EMBEDDING_DIM, dtype=np.float32)[:2]


class TwoWordEncoder:
    info = EncoderInfo("two-words", "two-words-sha", "", 128)

    def windows(self, text: str) -> list[str]:
        return [text]

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return np.vstack([RISK if t == "risk" else OTHER for t in texts])


def _judge(window: int = 2) -> EmbeddedJudge:
    weights = np.zeros((len(CATEGORIES), EMBEDDING_DIM))
    weights[0, 0] = 10.0  # suicide logit = 10 * (v . RISK) - 6
    bias = np.array([-6.0, -20.0, -20.0, -20.0])
    head = LinearHead(CATEGORIES, weights, bias, dict.fromkeys(CATEGORIES, 0.5), {})
    levels = Levels(dict.fromkeys(CATEGORIES, 0.99), dict.fromkeys(CATEGORIES, 0.7))
    calibration = ScreenCalibration(levels, levels, window, "two-words-sha")
    return EmbeddedJudge(
        encoder=TwoWordEncoder(),  # type: ignore[arg-type]
        head=head,
        calibration=calibration,
        config=EmbeddedJudgeConfig(use_lexicon=False),
    )


def test_a_single_message_must_clear_the_message_level() -> None:
    # sigmoid(4) = 0.982: high, but below the message level 0.99, and one message is no run
    [alone] = _judge().screen([conversation("risk")])
    assert alone.scores[Category.SUICIDE] == pytest.approx(1 / (1 + np.exp(-4.0)))
    assert not alone.flags[Category.SUICIDE]


def test_a_run_of_messages_is_scored_as_one_text() -> None:
    # pooled (RISK + OTHER) / sqrt(2): logit 10 * 0.707 - 6 = 1.07, p = 0.745 >= 0.7
    [run] = _judge().screen([conversation("hello", "risk")])
    assert run.flags[Category.SUICIDE]
    assert run.first_risk_message[Category.SUICIDE] == 2  # the message that completes the run
    [quiet] = _judge().screen([conversation("hello", "hello", "hello")])
    assert not quiet.flags[Category.SUICIDE]


def test_runs_are_at_most_window_messages_long() -> None:
    # with a window of 2, the run ending at the last message no longer holds "risk"
    judge = _judge(window=2)
    [screen] = judge.screen([conversation("risk", "hello", "hello")])
    contexts = [m.layers["context"][Category.SUICIDE] for m in screen.messages]
    assert contexts[0] == 0.0  # the first message has no run
    assert contexts[1] == pytest.approx(1 / (1 + np.exp(-(10 * 2**-0.5 - 6))))
    assert contexts[2] == pytest.approx(1 / (1 + np.exp(6.0)))
    # a window of 3 pools all three: (RISK + 2 OTHER) / sqrt(5)
    [wide] = _judge(window=3).screen([conversation("risk", "hello", "hello")])
    last = wide.messages[2].layers["context"][Category.SUICIDE]
    assert last == pytest.approx(1 / (1 + np.exp(-(10 * 5**-0.5 - 6))))


def test_a_calibration_for_another_encoder_is_refused() -> None:
    judge = _judge()
    assert judge.calibration is not None
    other = ScreenCalibration(judge.calibration.flag, judge.calibration.guard, 2, "other-sha")
    with pytest.raises(ValueError, match="another encoder"):
        EmbeddedJudge(
            encoder=TwoWordEncoder(),  # type: ignore[arg-type]
            head=judge.head,
            calibration=other,
            config=EmbeddedJudgeConfig(use_lexicon=False),
        )
