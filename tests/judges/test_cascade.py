"""The screening cascade: the distilled n-gram prefilter in front of the embedded judge."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mhsafety.conversation import Conversation, parse_record
from mhsafety.hashing import sha256_file
from mhsafety.judges.embedded import SETTLED_BY_PREFILTER, EmbeddedJudge, EmbeddedJudgeConfig
from mhsafety.judges.embedding import ModelFileError
from mhsafety.judges.evaluation import default_eval_path
from mhsafety.judges.prefilter import (
    PREFILTER_FILE,
    WEIGHTS_FILE,
    NgramFeatures,
    Prefilter,
    conversation_texts,
)
from mhsafety.judges.registry import load_judge
from mhsafety.judges.screen_model import load_screen_prefilter, models_dir
from mhsafety.logio import read_conversations
from mhsafety.taxonomy import CATEGORIES


@pytest.fixture(scope="module")
def full() -> EmbeddedJudge:
    return EmbeddedJudge()


def cascade_with(full: EmbeddedJudge, prefilter: Prefilter | None = None) -> EmbeddedJudge:
    """A cascade sharing the full judge's loaded models (optionally with another prefilter)."""
    return EmbeddedJudge(
        lexicon=full.lexicon,
        encoder=full.encoder,
        head=full.head,
        calibration=full.calibration,
        config=EmbeddedJudgeConfig(cascade=True),
        prefilter=prefilter,
    )


def constant(full: EmbeddedJudge, bias: float) -> Prefilter:
    """A prefilter that scores every text sigmoid(bias), bound to the full judge's models."""
    assert full.encoder is not None and full.calibration is not None
    features = NgramFeatures()
    return Prefilter(
        np.zeros(features.width, dtype=np.float32),
        bias,
        0.5,
        full.encoder.info.model_sha256,
        full.calibration.sha256,
    )


def eval_conversations() -> list[Conversation]:
    """The project's labelled eval set (not read to train or set the prefilter)."""
    return list(read_conversations(default_eval_path()))


def chat(*user: str, cid: str = "c") -> Conversation:
    messages: list[dict[str, str]] = []
    for text in user:
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    return parse_record({"id": cid, "messages": messages}, source="test", line=1)


ORDINARY = chat("what's a good recipe for banana bread", "thanks, and without eggs?", cid="o")
RISKY = chat("i want to kill myself tonight", cid="r")
QUIET_RISK = chat("nobody will even notice when I'm gone", cid="q")  # no lexicon hit


def test_the_shipped_prefilter_is_pinned_and_bound_to_the_shipped_screen(
    full: EmbeddedJudge,
) -> None:
    prefilter = load_screen_prefilter()
    assert full.encoder is not None and full.calibration is not None
    assert prefilter.encoder_sha256 == full.encoder.info.model_sha256
    assert prefilter.calibration_sha256 == full.calibration.sha256
    assert 0.0 < prefilter.level < 0.5
    judge = load_judge("embedded-cascade")
    assert judge.info.name == "mhsafety-embedded-cascade"
    assert judge.info.details["prefilter_sha256"] == prefilter.sha256


def test_scores_are_the_highest_of_each_message_and_the_joined_text() -> None:
    prefilter = load_screen_prefilter()
    texts = conversation_texts(ORDINARY)
    assert texts[-1] == "what's a good recipe for banana bread\nthanks, and without eggs?"
    [score] = prefilter.scores([ORDINARY])
    assert score == pytest.approx(float(prefilter.probabilities(texts).max()))
    assert conversation_texts(RISKY) == ["i want to kill myself tonight"]


def test_nothing_settled_means_verdicts_identical_to_the_full_screen(full: EmbeddedJudge) -> None:
    conversations = [ORDINARY, RISKY, QUIET_RISK, *eval_conversations()[:40]]
    cascade = cascade_with(full, constant(full, bias=5.0))  # every score 0.993 > level
    for a, b in zip(full.screen(conversations), cascade.screen(conversations), strict=True):
        assert b.details == {"prefilter_score": pytest.approx(0.993307, abs=1e-6)}
        assert (a.flags, a.scores, a.evidence, a.messages) == (
            b.flags,
            b.scores,
            b.evidence,
            b.messages,
        )


def test_a_settled_conversation_is_not_embedded_and_says_so(full: EmbeddedJudge) -> None:
    cascade = cascade_with(full, constant(full, bias=-8.0))  # every score below the level
    assert cascade.encoder is not None
    cascade.encoder.clear_cache()
    ordinary, quiet = cascade.screen([ORDINARY, QUIET_RISK])
    assert not cascade.encoder._cache  # nothing was embedded
    for verdict in (ordinary, quiet):
        assert verdict.details["settled_by"] == SETTLED_BY_PREFILTER
        assert not verdict.flagged_any
        assert all(v == 0.0 for v in verdict.scores.values())
    # the settled quiet disclosure is exactly the loss the benchmark measures on real text
    [full_quiet] = full.screen([QUIET_RISK])
    assert full_quiet.flagged_any


def test_a_lexicon_hit_is_never_settled(full: EmbeddedJudge) -> None:
    cascade = cascade_with(full, constant(full, bias=-8.0))
    negated = chat("i would never hurt myself, i just need help with my taxes", cid="n")
    settled, _ = cascade.settled([RISKY, negated, ORDINARY])
    assert settled == [False, False, True]
    risky, _, _ = cascade.screen([RISKY, negated, ORDINARY])
    assert risky.flags[CATEGORIES[0]] and "settled_by" not in risky.details


def test_the_shipped_cascade_loses_no_flag_on_the_eval_set(full: EmbeddedJudge) -> None:
    """The project's eval set was not read to train or set the prefilter."""
    conversations = eval_conversations()
    cascade = cascade_with(full)
    everything = full.screen(conversations)
    cascaded = cascade.screen(conversations)
    lost = [a.id for a, b in zip(everything, cascaded, strict=True) if a.flags != b.flags]
    assert lost == []
    assert any("settled_by" in v.details for v in cascaded)


def test_a_prefilter_for_another_screen_is_refused(full: EmbeddedJudge) -> None:
    other = replace(constant(full, bias=0.0), calibration_sha256="0" * 64)
    with pytest.raises(ValueError, match="another encoder or calibration"):
        cascade_with(full, other)
    with pytest.raises(ValueError, match="both the lexicon and the embedding"):
        EmbeddedJudge(config=EmbeddedJudgeConfig(cascade=True, use_lexicon=False))


def test_tampered_prefilter_files_are_refused(tmp_path: Path) -> None:
    for name in (PREFILTER_FILE, WEIGHTS_FILE):
        shutil.copy(models_dir() / name, tmp_path / name)
    sidecar = tmp_path / PREFILTER_FILE
    pinned = sha256_file(sidecar)
    assert Prefilter.load(sidecar, pinned).level == load_screen_prefilter().level
    weights = tmp_path / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="prefilter weights"):
        Prefilter.load(sidecar, pinned)
    raw = json.loads(sidecar.read_text("utf-8"))
    raw["level"] = 0.9
    sidecar.write_text(json.dumps(raw), "utf-8")
    with pytest.raises(ModelFileError, match="screen prefilter"):
        Prefilter.load(sidecar, pinned)


def test_malformed_prefilters_are_refused(full: EmbeddedJudge) -> None:
    good = constant(full, bias=0.0)
    with pytest.raises(ModelFileError, match="shape"):
        replace(good, weights=np.zeros(10, dtype=np.float32))
    with pytest.raises(ModelFileError, match="level"):
        replace(good, level=1.5)
