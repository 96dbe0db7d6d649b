"""The screen's decision levels: the pinned calibration file and how the judge applies it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from mhsafety.conversation import Conversation, parse_record
from mhsafety.judges.calibration import LEXICON_FLAG_SIGNAL, Levels, RunWeighting, ScreenCalibration
from mhsafety.judges.embedded import (
    RUN_TEXT_LAYER,
    EmbeddedJudge,
    EmbeddedJudgeConfig,
    pack_runs,
    stands_alone,
)
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


# Scores are rounded to SCORE_DECIMALS (6) before decisions, hence abs=1e-6 below.
# A two-word-vocabulary encoder: "risk" points one way, anything else the other. It makes the
# pooling arithmetic exact, so the run rule can be checked without a trained model.
RISK, OTHER = np.eye(EMBEDDING_DIM, dtype=np.float32)[:2]


class TwoWordEncoder:
    info = EncoderInfo("two-words", "two-words-sha", "", 128)

    def windows(self, text: str) -> list[str]:
        return [text]

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return np.vstack([RISK if t.split()[0] == "risk" else OTHER for t in texts])

    def token_counts(self, texts: list[str]) -> npt.NDArray[np.int64]:
        return np.array([len(t.split()) for t in texts], dtype=np.int64)


def _judge(
    window: int = 2,
    *,
    message_level: float = 0.99,
    run_weighting: RunWeighting = "uniform",
    followup_min_tokens: int = 0,
    run_text: bool = False,
    encoder: object | None = None,
    use_context: bool = True,
) -> EmbeddedJudge:
    weights = np.zeros((len(CATEGORIES), EMBEDDING_DIM))
    weights[0, 0] = 10.0  # suicide logit = 10 * (v . RISK) - 6
    bias = np.array([-6.0, -20.0, -20.0, -20.0])
    head = LinearHead(CATEGORIES, weights, bias, dict.fromkeys(CATEGORIES, 0.5), {})
    levels = Levels(dict.fromkeys(CATEGORIES, message_level), dict.fromkeys(CATEGORIES, 0.7))
    calibration = ScreenCalibration(
        levels,
        levels,
        window,
        "two-words-sha",
        run_weighting=run_weighting,
        followup_min_tokens=followup_min_tokens,
        run_text=run_text,
    )
    return EmbeddedJudge(
        encoder=encoder or TwoWordEncoder(),  # type: ignore[arg-type]
        head=head,
        calibration=calibration,
        config=EmbeddedJudgeConfig(use_lexicon=False, use_context=use_context),
    )


def test_a_single_message_must_clear_the_message_level() -> None:
    # sigmoid(4) = 0.982: high, but below the message level 0.99, and one message is no run
    [alone] = _judge().screen([conversation("risk")])
    assert alone.scores[Category.SUICIDE] == pytest.approx(1 / (1 + np.exp(-4.0)), abs=1e-6)
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
    assert contexts[1] == pytest.approx(1 / (1 + np.exp(-(10 * 2**-0.5 - 6))), abs=1e-6)
    assert contexts[2] == pytest.approx(1 / (1 + np.exp(6.0)), abs=1e-6)
    # a window of 3 pools all three: (RISK + 2 OTHER) / sqrt(5)
    [wide] = _judge(window=3).screen([conversation("risk", "hello", "hello")])
    last = wide.messages[2].layers["context"][Category.SUICIDE]
    assert last == pytest.approx(1 / (1 + np.exp(-(10 * 5**-0.5 - 6))), abs=1e-6)


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


def test_a_short_follow_up_is_tested_only_inside_its_runs() -> None:
    # sigmoid(4) = 0.982 clears a message level of 0.95 when a message is read alone
    plain = _judge(message_level=0.95)
    strict = _judge(message_level=0.95, followup_min_tokens=3)
    [first] = strict.screen([conversation("risk", "hello there friend")])
    assert first.flags[Category.SUICIDE]  # the first message is always tested alone
    assert first.first_risk_message[Category.SUICIDE] == 0
    [follow_up] = plain.screen([conversation("hello there friend", "risk")])
    assert follow_up.first_risk_message[Category.SUICIDE] == 2
    assert follow_up.evidence[0].layer == "embedding"
    # the same one-word follow-up, short: its run (0.745 >= 0.7) still flags, as context
    [short] = strict.screen([conversation("hello there friend", "risk")])
    assert short.flags[Category.SUICIDE]
    assert short.evidence[0].layer == "context"
    # the raw score stays in its layer; the combined score (what the message level and the
    # guard read) is zero
    raw = short.messages[1].layers["embedding"][Category.SUICIDE]
    assert raw == pytest.approx(1 / (1 + np.exp(-4.0)), abs=1e-6)
    assert short.messages[1].combined[Category.SUICIDE] == 0.0
    # long enough to stand alone
    [long] = strict.screen([conversation("hello there friend", "risk it all now")])
    assert long.evidence[0].layer == "embedding"


def test_which_messages_stand_alone() -> None:
    assert stands_alone(0, 1, 0.0, 10)  # first message
    assert stands_alone(3, 1, 0.5, 10)  # a lexicon hit
    assert stands_alone(3, 10, 0.0, 10)  # long enough
    assert not stands_alone(3, 9, 0.0, 10)
    assert stands_alone(3, 1, 0.0, 0)  # rule off


def test_token_weighted_runs_let_a_long_message_outweigh_a_short_one() -> None:
    # "risk" + a 3-word ordinary follow-up: uniform pooling gives (RISK + OTHER) / sqrt(2);
    # weighting by length gives (RISK + 3 OTHER) / sqrt(10): logit 10 / sqrt(10) - 6 < 0
    texts = conversation("risk", "hello there friend")
    [uniform] = _judge().screen([texts])
    [weighted] = _judge(run_weighting="tokens").screen([texts])
    assert uniform.messages[1].layers["context"][Category.SUICIDE] == pytest.approx(
        1 / (1 + np.exp(-(10 * 2**-0.5 - 6))), abs=1e-6
    )
    assert weighted.messages[1].layers["context"][Category.SUICIDE] == pytest.approx(
        1 / (1 + np.exp(-(10 * 10**-0.5 - 6))), abs=1e-6
    )
    assert uniform.flags[Category.SUICIDE] and not weighted.flags[Category.SUICIDE]


def test_run_rules_round_trip_and_bad_values_are_refused() -> None:
    raw = _raw()
    assert ScreenCalibration.from_json(raw).run_weighting == "uniform"  # older files
    raw |= {"run_weighting": "tokens", "followup_min_tokens": 10}
    calibration = ScreenCalibration.from_json(raw)
    assert (calibration.run_weighting, calibration.followup_min_tokens) == ("tokens", 10)
    again = ScreenCalibration.from_json(calibration.to_json())
    assert (again.run_weighting, again.followup_min_tokens) == ("tokens", 10)
    with pytest.raises(ModelFileError, match="run_weighting"):
        ScreenCalibration.from_json(raw | {"run_weighting": "squared"})
    with pytest.raises(ModelFileError, match="followup_min_tokens"):
        ScreenCalibration.from_json(raw | {"followup_min_tokens": -1})


class SpreadEncoder(TwoWordEncoder):
    """Risk only where "no point" is read as one phrase, whatever whitespace joins it."""

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return np.vstack([RISK if "no point" in " ".join(t.split()) else OTHER for t in texts])


@pytest.mark.parametrize(
    ("tokens", "limit", "runs"),
    [
        ([3, 3, 3], 7, [(0, 1), (1, 2)]),  # 3 + 1 + 3 fits, a third does not
        ([3, 3, 3], 100, [(0, 2)]),
        ([3, 3, 3, 3, 3], 11, [(0, 2), (2, 4)]),  # the next run starts at the last message
        ([200, 3, 3], 120, [(1, 2)]),  # too long to share a window: read alone, in windows
        ([3, 200, 3], 120, []),
        ([5], 120, []),
        ([], 120, []),
    ],
)
def test_pack_runs(tokens: list[int], limit: int, runs: list[tuple[int, int]]) -> None:
    assert pack_runs(tokens, limit) == runs


def test_packed_runs_cover_every_border_and_keep_a_conversations_start() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        tokens = [int(t) for t in rng.integers(1, 90, size=int(rng.integers(2, 30)))]
        runs = pack_runs(tokens, 120)
        for first, last in runs:
            assert sum(tokens[first : last + 1]) + (last - first) <= 120
        for border in range(len(tokens) - 1):  # each pair that fits together is read together
            if tokens[border] + 1 + tokens[border + 1] <= 120:
                assert any(first <= border < last for first, last in runs)
        # the guard screens each prefix; the runs it reads are the audit's, but the last
        for cut in range(2, len(tokens)):
            head = pack_runs(tokens[:cut], 120)
            assert head[:-1] == [r for r in runs if r[1] < cut][: len(head) - 1]


def test_a_disclosure_spread_over_turns_is_read_as_one_text() -> None:
    texts = conversation("honestly there is no", "point anymore", "so yeah")
    [spread] = _judge(message_level=0.95, run_text=True, encoder=SpreadEncoder()).screen([texts])
    assert spread.flags[Category.SUICIDE]
    assert spread.first_risk_message[Category.SUICIDE] == 2  # where the run is complete
    [evidence] = spread.evidence
    assert evidence.layer == RUN_TEXT_LAYER
    assert evidence.quote == "honestly there is no\npoint anymore\nso yeah"
    # the run's score is in its own layer; the message's combined score stays its own (the
    # guard answers a run once, like context, not at every later turn)
    last = spread.messages[-1]
    assert last.layers[RUN_TEXT_LAYER][Category.SUICIDE] == pytest.approx(
        1 / (1 + np.exp(-4.0)), abs=1e-6
    )
    assert last.combined[Category.SUICIDE] == pytest.approx(1 / (1 + np.exp(6.0)), abs=1e-6)
    assert spread.scores[Category.SUICIDE] == last.layers[RUN_TEXT_LAYER][Category.SUICIDE]
    # no message says it alone, and pooled runs of "other" embeddings do not either
    for quiet in (
        _judge(message_level=0.95, encoder=SpreadEncoder()),
        _judge(message_level=0.95, run_text=True, encoder=SpreadEncoder(), use_context=False),
    ):
        [screen] = quiet.screen([texts])
        assert not screen.flags[Category.SUICIDE]
        assert all(RUN_TEXT_LAYER not in m.layers for m in screen.messages)


def test_a_batch_reads_each_conversations_runs_apart() -> None:
    judge = _judge(message_level=0.95, run_text=True, encoder=SpreadEncoder())
    first = conversation("there is no")
    second = conversation("point anymore", "fine thanks")
    both = judge.screen([first, second, conversation("there is no", "point anymore")])
    assert [s.flags[Category.SUICIDE] for s in both] == [False, False, True]


def test_run_text_round_trips_and_must_be_a_boolean() -> None:
    raw = _raw()
    assert ScreenCalibration.from_json(raw).run_text is False  # older files
    calibration = ScreenCalibration.from_json(raw | {"run_text": True})
    assert ScreenCalibration.from_json(calibration.to_json()).run_text is True
    with pytest.raises(ModelFileError, match="run_text"):
        ScreenCalibration.from_json(raw | {"run_text": "yes"})
