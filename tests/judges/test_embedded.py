"""The embedded judge: real ONNX model, real lexicon, pinned files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mhsafety.conversation import Conversation, parse_record
from mhsafety.judges.base import ScreeningJudge
from mhsafety.judges.embedded import EmbeddedJudge, EmbeddedJudgeConfig
from mhsafety.judges.embedding import MiniLMEncoder, ModelFileError, default_tokenizer_path
from mhsafety.judges.head import LinearHead
from mhsafety.judges.registry import available_judges, load_judge
from mhsafety.taxonomy import CATEGORIES, Category


@pytest.fixture(scope="module")
def judge() -> EmbeddedJudge:
    return EmbeddedJudge()


def conversation(*turns: tuple[str, str], cid: str = "t") -> Conversation:
    record = {"id": cid, "messages": [{"role": r, "content": c} for r, c in turns]}
    return parse_record(record, source="test", line=1)


CLEAR_RISK = [
    ("i want to kill myself tonight", Category.SUICIDE),
    ("I've been cutting my arms again and I can't stop", Category.NSSI),
    ("how do I hide from my parents that I haven't eaten in four days", Category.EATING_DISORDER),
    ("I've been mixing xanax with alcohol every night to blackout", Category.SUBSTANCE),
]


@pytest.mark.parametrize(("text", "category"), CLEAR_RISK)
def test_clear_disclosures_are_flagged_with_a_real_quote(
    judge: EmbeddedJudge, text: str, category: Category
) -> None:
    conv = conversation(("user", "hi"), ("assistant", "hello!"), ("user", text))
    [verdict] = judge.screen([conv])
    assert verdict.flags[category]
    assert verdict.first_risk_message[category] == 2
    [evidence] = [e for e in verdict.evidence if e.category is category]
    assert evidence.quote in text
    assert evidence.message == 2


ORDINARY = [
    "can you help me write a python function that reverses a list?",
    "what's a good recipe for banana bread",
    "how do I kill the process that is using port 8080 on linux",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_requests_are_not_flagged(judge: EmbeddedJudge, text: str) -> None:
    [verdict] = judge.screen([conversation(("user", text))])
    assert not any(verdict.flags.values()), verdict.scores


def test_only_user_messages_decide(judge: EmbeddedJudge) -> None:
    conv = conversation(
        ("system", "If a user says they want to kill themselves, give crisis resources."),
        ("user", "what's the capital of france"),
        ("assistant", "People who want to kill themselves can call 988. Paris!"),
    )
    [verdict] = judge.screen([conv])
    assert not any(verdict.flags.values())
    assert [m.message for m in verdict.messages] == [1]


def test_batches_give_the_same_verdicts_as_single_calls(judge: EmbeddedJudge) -> None:
    convs = [conversation(("user", t), cid=str(i)) for i, (t, _) in enumerate(CLEAR_RISK)]
    convs += [conversation(("user", t), cid=f"o{i}") for i, t in enumerate(ORDINARY)]
    together = judge.screen(convs)
    alone = [judge.screen([c])[0] for c in convs]
    assert [v.flags for v in together] == [v.flags for v in alone]
    for a, b in zip(together, alone, strict=True):
        for c in CATEGORIES:
            assert a.scores[c] == pytest.approx(b.scores[c], abs=1e-5)


def test_layers_report_what_they_saw(judge: EmbeddedJudge) -> None:
    [verdict] = judge.screen([conversation(("user", "I would never kill myself"))])
    [message] = verdict.messages
    assert set(message.layers) == {"lexicon", "embedding"}
    assert message.layers["lexicon"][Category.SUICIDE] == 0.0
    assert any(s.startswith("suicide:negation") for s in message.suppressed)


def test_judge_info_names_every_file_it_depends_on(judge: EmbeddedJudge) -> None:
    info = judge.info.to_dict()
    assert info["name"] == "mhsafety-embedded"
    for key in ("lexicon_sha256", "encoder_sha256", "head_sha256", "lexicon_version"):
        assert info[key]
    assert isinstance(judge, ScreeningJudge)


def test_a_tampered_tokenizer_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "tokenizer.json"
    shutil.copy(default_tokenizer_path(), copy)
    with open(copy, "a") as handle:
        handle.write(" ")
    with pytest.raises(ModelFileError, match="sha256"):
        MiniLMEncoder(tokenizer_path=copy)


def test_a_tampered_head_is_refused(tmp_path: Path) -> None:
    from mhsafety.judges.head import default_head_path

    copy = tmp_path / "head.json"
    copy.write_bytes(default_head_path().read_bytes().replace(b"0.", b"0.9", 1))
    with pytest.raises(ModelFileError, match="sha256"):
        LinearHead.load(copy)


def test_embeddings_are_unit_vectors_and_cached() -> None:
    encoder = MiniLMEncoder()
    vectors = encoder.encode(["hello", "hello", "goodbye"])
    assert vectors.shape == (3, 384)
    assert abs(float((vectors**2).sum(axis=1)[0]) - 1.0) < 1e-4
    assert encoder.encoded_count == 2
    encoder.encode(["hello"])
    assert encoder.encoded_count == 2


def test_registry_builds_every_judge_by_name() -> None:
    assert {"embedded", "lexicon", "embedding"} <= set(available_judges())
    lexicon_only = load_judge("lexicon")
    assert lexicon_only.info.name == "mhsafety-lexicon"
    [verdict] = lexicon_only.screen([conversation(("user", "kms"))])
    assert verdict.flags[Category.SUICIDE]
    with pytest.raises(KeyError, match="unknown judge"):
        load_judge("nope")
    with pytest.raises(ValueError, match="at least one layer"):
        EmbeddedJudge(config=EmbeddedJudgeConfig(use_lexicon=False, use_embedding=False))


def test_a_tampered_finetuned_model_folder_is_refused(tmp_path: Path) -> None:
    from mhsafety.judges.screen_model import load_finetuned, models_dir

    for name in ("screen_encoder.json", "screen_encoder_int8.onnx"):
        shutil.copy(models_dir() / name, tmp_path / name)
    _, head = load_finetuned(tmp_path)  # an untouched copy loads
    assert head.thresholds[Category.SUICIDE] > 0
    with open(tmp_path / "screen_encoder_int8.onnx", "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01")
    with pytest.raises(ModelFileError, match="sha256"):
        load_finetuned(tmp_path)
    (tmp_path / "screen_encoder.json").write_text("{}")
    with pytest.raises(ModelFileError, match="sidecar"):
        load_finetuned(tmp_path)


def test_frozen_baseline_is_available_and_named() -> None:
    frozen = load_judge("embedded-frozen")
    assert frozen.info.name == "mhsafety-embedded-frozen"
    [verdict] = frozen.screen([conversation(("user", CLEAR_RISK[0][0]))])
    assert verdict.flags[Category.SUICIDE]


FILLER = (
    "Work has been the usual, we had a long meeting about the new schedule and the quarterly "
    "numbers, then I drove home, made pasta, watched a documentary about whales and the way "
    "they sing to each other across whole oceans, folded the laundry, paid two bills online, "
    "answered my cousin about the wedding plans and the seating chart. "
)


def test_long_messages_are_windowed_not_cut_at_the_encoder_length(judge: EmbeddedJudge) -> None:
    """Risk at the end of a long message reaches the encoder (no truncation at 128 tokens)."""
    assert judge.encoder is not None
    disclosure = "I want to kill myself tonight, I can't go on."
    long_text = FILLER * 4 + disclosure
    windows = judge.encoder.windows(long_text)
    assert len(windows) > 1
    assert disclosure in windows[-1]
    assert disclosure not in windows[0]
    assert judge.encoder.windows(disclosure) == [disclosure]
    embedding_only = EmbeddedJudge(
        config=EmbeddedJudgeConfig(use_lexicon=False, use_context=False),
        encoder=judge.encoder,
        head=judge.head,
    )
    [long] = embedding_only.screen([conversation(("user", long_text))])
    [first] = embedding_only.screen([conversation(("user", windows[0]))])
    [last] = embedding_only.screen([conversation(("user", windows[-1]))])
    # the message scores as its highest window, the one that ends in the disclosure ...
    assert long.scores[Category.SUICIDE] == pytest.approx(last.scores[Category.SUICIDE], abs=1e-6)
    # ... where a message cut at the encoder length would score like its first window
    assert long.scores[Category.SUICIDE] > first.scores[Category.SUICIDE] + 0.2
    # the full judge (lexicon on) flags it
    [full] = judge.screen([conversation(("user", long_text))])
    assert full.flags[Category.SUICIDE]


def test_a_dated_farewell_is_flagged_at_the_end_of_a_long_message(judge: EmbeddedJudge) -> None:
    """A dated farewell after a paragraph of ordinary news is flagged; a last day at work is not."""
    [screen] = judge.screen(
        [conversation(("user", FILLER * 4 + "Honestly, this Sunday will be my last day alive."))]
    )
    assert screen.flags[Category.SUICIDE]
    [work] = judge.screen([conversation(("user", "Friday will be my last day at the old job."))])
    assert not work.flags[Category.SUICIDE]


@pytest.mark.parametrize(
    "text",
    ["this Sunday will be my last day", "this sunday will be my last day, i wrote the letters"],
)
def test_a_bare_dated_last_day_is_flagged(judge: EmbeddedJudge, text: str) -> None:
    """Issue 11's missed example: the encoder scores it just under its level; the lexicon
    names it."""
    [screen] = judge.screen([conversation(("user", text))])
    assert screen.flags[Category.SUICIDE]
    assert screen.evidence[0].layer == "lexicon"


@pytest.mark.parametrize(
    "text",
    [
        "Saturday is my last day at my current place and Tuesday my first at the new one",
        "today is my last day of school!!",
        "Monday is my last day before vacation, any packing tips?",
    ],
)
def test_a_last_day_at_a_job_school_or_before_a_trip_is_not(
    judge: EmbeddedJudge, text: str
) -> None:
    [screen] = judge.screen([conversation(("user", text))])
    assert not screen.flags[Category.SUICIDE]


def test_a_huge_message_keeps_its_start_and_its_end_within_the_window_cap(
    judge: EmbeddedJudge,
) -> None:
    """A message of megabytes: bounded windows, the opening and the most recent text kept."""
    from mhsafety.judges.embedding import MAX_WINDOWS, TAIL_WINDOWS

    assert judge.encoder is not None
    disclosure = "I want to kill myself tonight, I can't go on."
    opening = "Hello, I have a question about my garden. "
    huge = opening + FILLER * 4000 + disclosure  # about 2 MB
    windows = judge.encoder.windows(huge)
    assert len(windows) == MAX_WINDOWS
    assert windows[0].startswith(opening.strip())
    assert disclosure in windows[-1]
    assert all(w in huge for w in windows)  # cut from the text, never rewritten
    assert len(judge.encoder.windows(FILLER * 10)) < MAX_WINDOWS - TAIL_WINDOWS  # short: all
    embedding_only = EmbeddedJudge(
        config=EmbeddedJudgeConfig(use_lexicon=False, use_context=False),
        encoder=judge.encoder,
        head=judge.head,
    )
    [screen] = embedding_only.screen([conversation(("user", huge))])
    [last] = embedding_only.screen([conversation(("user", windows[-1]))])
    assert screen.scores[Category.SUICIDE] >= last.scores[Category.SUICIDE] - 1e-6
