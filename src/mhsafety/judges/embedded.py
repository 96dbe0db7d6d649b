"""The embedded screening judge: lexicon/pattern layer + MiniLM embeddings with a trained head.

Offline, no torch. Each layer reports what it saw per user message; only user messages decide
flags. A conversation is flagged for a category when

* one user message's combined score reaches the category's **message** level, or
* the pooled embedding of a run of consecutive user messages (two up to
  ``window_messages``, ending at some message) reaches its **conversation** level: risk that
  only shows over several turns, or
* with the calibration's ``run_text``, consecutive user messages packed into one encoder
  window (:func:`pack_runs`) and read together as one text reach the **message** level: the
  encoder sees the turns side by side, as it would see them in one message.

How a run is pooled and which messages are tested alone come with the calibration: with
``run_weighting: tokens`` each message's embedding counts by its length in word pieces (the
run read as one text), and a follow-up shorter than ``followup_min_tokens`` word pieces without
a lexicon hit is tested only inside its runs ("what would you do in my place" means what came
before it means).

The levels come from :mod:`mhsafety.judges.calibration`, set on real labelled text; the guard
uses a stricter set of its own. A single short sentence must clear the (high) message level on
its own; a run of messages is scored as one text, so false flags do not grow with every extra
turn the way "any message over a threshold" does. Long messages are cut into overlapping token
windows instead of truncated.

The combined score of a message is the larger of the lexicon signal and the embedding head's
probability; when the lexicon found only negated or figurative uses of risk words in that
message ("I would never hurt myself", "this exam is killing me"), the head's probability is
damped so a lookalike needs a clearly risky embedding to count. Explicit and coded lexicon hits
always reach the message level (levels are capped below their signal).

With ``cascade`` on, a distilled n-gram model (:mod:`mhsafety.judges.prefilter`) first settles
conversations it scores as clearly ordinary and in which the lexicon found nothing; only the
rest are embedded. A settled conversation is never flagged and its record says so
(``judge_details.settled_by``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from mhsafety.conversation import Conversation
from mhsafety.judges.base import ConversationScreen, Evidence, JudgeInfo, MessageScore
from mhsafety.judges.calibration import LEXICON_FLAG_SIGNAL, Levels, Purpose, ScreenCalibration
from mhsafety.judges.embedding import WINDOW_TOKENS, MiniLMEncoder
from mhsafety.judges.head import LinearHead
from mhsafety.judges.lexicon import Lexicon, LexiconHit
from mhsafety.judges.prefilter import Prefilter
from mhsafety.judges.screen_model import (
    ModelVariant,
    load_screen_calibration,
    load_screen_model,
    load_screen_prefilter,
)
from mhsafety.taxonomy import CATEGORIES, Category

JUDGE_NAME = "mhsafety-embedded"
JUDGE_VERSION = "2.1.0"
LEXICON_LAYER = "lexicon"
EMBEDDING_LAYER = "embedding"
CONTEXT_LAYER = "context"
RUN_TEXT_LAYER = "run-text"
RUN_SEPARATOR = "\n"
SETTLED_BY_PREFILTER = "prefilter"
MAX_QUOTE_CHARS = 240
SCAN_CACHE_SIZE = 200_000
STRENGTH_SIGNAL: dict[str, float] = {
    "explicit": 1.0,
    "coded": LEXICON_FLAG_SIGNAL,
    "contextual": 0.5,
}
"""Lexicon signal per pattern strength (contextual terms alone stay below most levels)."""

FloatMatrix = npt.NDArray[np.float64] | npt.NDArray[np.float32]
RunTexts = dict[int, tuple[int, str, FloatMatrix]]
"""Per user-message row: the packed run ending there, as (first row, joined text,
probabilities)."""
SCORE_DECIMALS = 6
"""Scores are rounded to this many decimals before anything is decided on them: the encoder's
output moves by about 1e-9 with the batch a message shares (padding width) and with the
per-process cache, and decisions (flags, which message is cited) must not."""


def signal_from_hits(hits: Sequence[LexiconHit]) -> dict[Category, float]:
    """Per-category lexicon signal: the strongest hit that was not negated or figurative."""
    signal = dict.fromkeys(CATEGORIES, 0.0)
    for hit in hits:
        if hit.suppressed_by is None:
            signal[hit.category] = max(signal[hit.category], STRENGTH_SIGNAL[hit.strength])
    return signal


def stands_alone(row: int, tokens: int, lexical: float, followup_min_tokens: int) -> bool:
    """Whether a user message is tested against the message level on its own.

    The first user message always is, and so is any message with a lexicon signal; a later
    message shorter than ``followup_min_tokens`` word pieces counts only inside its runs.
    """
    return row == 0 or lexical > 0.0 or tokens >= followup_min_tokens


def pack_runs(
    tokens: Sequence[int] | npt.NDArray[np.int64], limit: int = WINDOW_TOKENS
) -> list[tuple[int, int]]:
    """Consecutive user messages packed into texts the encoder reads whole.

    Greedy from the first message: a run takes the next message while its word pieces (one
    more per separator) stay within ``limit``; the next run starts at the last message of the
    one before, so every border between two messages is read inside some run. Only runs of two
    or more messages are returned, as inclusive ``(first, last)`` rows; a message too long to
    share a window is already read alone, in windows. Packing from the start keeps the runs of
    a conversation's beginning the same however the conversation goes on, so the guard,
    screening turn by turn, reads the runs the audit reads.
    """
    runs: list[tuple[int, int]] = []
    start = 0
    while start < len(tokens) - 1:
        end, total = start, int(tokens[start])
        while end + 1 < len(tokens) and total + 1 + int(tokens[end + 1]) <= limit:
            end += 1
            total += 1 + int(tokens[end])
        if end == start:
            start += 1
            continue
        runs.append((start, end))
        if end == len(tokens) - 1:
            break
        start = end
    return runs


@dataclass(frozen=True)
class EmbeddedJudgeConfig:
    """Knobs of the embedded judge (the head's thresholds come with the trained head)."""

    suppressed_damping: float = 0.6
    """Multiplier on the head's probability for a message whose risk words were all negated
    or figurative."""
    use_context: bool = True
    """Also score runs of consecutive user messages (build-up over turns): pooled runs and,
    where the calibration asks for it, runs read as one text."""
    threshold_offset: float = 0.0
    """Added to every flag level (negative = more recall, less precision)."""
    use_lexicon: bool = True
    """Run the lexicon/pattern layer (off: the embedding head alone)."""
    use_embedding: bool = True
    """Run the embedding head (off: the lexicon alone, which flags at signal >= 0.5)."""
    model: ModelVariant = "finetuned"
    """Which embedding-layer model: the fine-tuned encoder or the frozen baseline."""
    cascade: bool = False
    """Settle clearly ordinary conversations with the distilled prefilter before embedding
    (audits at scale; needs the fine-tuned model and both layers)."""


class EmbeddedJudge:
    """Lexicon + embedding-head screening judge; see the module docstring."""

    LEXICON_ONLY_THRESHOLD = 0.5

    def __init__(
        self,
        *,
        lexicon: Lexicon | None = None,
        encoder: MiniLMEncoder | None = None,
        head: LinearHead | None = None,
        calibration: ScreenCalibration | None = None,
        config: EmbeddedJudgeConfig | None = None,
        prefilter: Prefilter | None = None,
    ) -> None:
        self.config = config or EmbeddedJudgeConfig()
        if not (self.config.use_lexicon or self.config.use_embedding):
            raise ValueError("the embedded judge needs at least one layer")
        if self.config.cascade and not (self.config.use_lexicon and self.config.use_embedding):
            raise ValueError("the cascade needs both the lexicon and the embedding layer")
        self.lexicon = (lexicon or Lexicon.load()) if self.config.use_lexicon else None
        self.encoder: MiniLMEncoder | None = None
        self.head: LinearHead | None = None
        details: dict[str, str] = {}
        if self.lexicon is not None:
            details |= {
                "lexicon_version": self.lexicon.version,
                "lexicon_sha256": self.lexicon.sha256,
            }
        if self.config.use_embedding:
            if encoder is None or head is None:
                encoder, head = load_screen_model(self.config.model)
                if calibration is None:
                    calibration = load_screen_calibration(self.config.model, head)
            if calibration is None:
                calibration = ScreenCalibration.from_head(head)
            if calibration.encoder_sha256 and (
                calibration.encoder_sha256 != encoder.info.model_sha256
            ):
                raise ValueError("the screen calibration was set for another encoder")
            self.encoder, self.head = encoder, calibration.head or head
            details |= {
                "encoder": self.encoder.info.name,
                "encoder_sha256": self.encoder.info.model_sha256,
                "head_sha256": self.head.sha256,
                "calibration_sha256": calibration.sha256,
            }
        self.calibration = calibration
        self.prefilter: Prefilter | None = None
        if self.config.cascade:
            self.prefilter = prefilter or load_screen_prefilter()
            assert self.encoder is not None and calibration is not None
            if (self.prefilter.encoder_sha256, self.prefilter.calibration_sha256) != (
                self.encoder.info.model_sha256,
                calibration.sha256,
            ):
                raise ValueError(
                    "the screen prefilter was distilled from another encoder or calibration; "
                    "retrain it with scripts/train_screen_prefilter.py"
                )
            details |= {
                "prefilter_sha256": self.prefilter.sha256,
                "prefilter_level": str(self.prefilter.level),
            }
        if self.config.threshold_offset:
            details["threshold_offset"] = str(self.config.threshold_offset)
        layers = [
            n
            for n, on in (
                ("lexicon", self.config.use_lexicon),
                ("embedding", self.config.use_embedding),
            )
            if on
        ]
        name = JUDGE_NAME if len(layers) == 2 else f"mhsafety-{layers[0]}"
        if self.config.use_embedding and self.config.model != "finetuned":
            name += f"-{self.config.model}"
        if self.prefilter is not None:
            name += "-cascade"
        self._info = JudgeInfo(name, JUDGE_VERSION, details)
        self._scan_cache: dict[str, list[LexiconHit]] = {}
        self._column = {c: i for i, c in enumerate(self.head.categories)} if self.head else {}

    @property
    def info(self) -> JudgeInfo:
        """Name, version and the hashes of everything the verdicts depend on."""
        return self._info

    def _scan(self, text: str) -> list[LexiconHit]:
        """Lexicon hits for a message, computed once per distinct text."""
        if self.lexicon is None:
            return []
        hits = self._scan_cache.get(text)
        if hits is None:
            hits = self.lexicon.scan(text)
            if len(self._scan_cache) < SCAN_CACHE_SIZE:
                self._scan_cache[text] = hits
        return hits

    def levels(self, purpose: Purpose = "flag") -> Levels:
        """Message and conversation levels for flagging (with the offset) or for the guard."""
        if self.calibration is None:
            lexicon_only = dict.fromkeys(CATEGORIES, self.LEXICON_ONLY_THRESHOLD)
            base = Levels(lexicon_only, lexicon_only)
        else:
            base = self.calibration.levels(purpose)
        if purpose == "guard" or not self.config.threshold_offset:
            return base
        offset = self.config.threshold_offset
        return Levels(
            {c: v + offset for c, v in base.message.items()},
            {c: v + offset for c, v in base.conversation.items()},
        )

    def threshold(self, category: Category) -> float:
        """The message level at which a category is flagged."""
        return self.levels("flag").message[category]

    @property
    def _weighting(self) -> str:
        """How runs are pooled (see :class:`ScreenCalibration`)."""
        return self.calibration.run_weighting if self.calibration is not None else "uniform"

    @property
    def _followup_min_tokens(self) -> int:
        """Follow-ups shorter than this (word pieces) are tested only inside their runs."""
        return self.calibration.followup_min_tokens if self.calibration is not None else 0

    @property
    def _run_text(self) -> bool:
        """Whether packed runs of user messages are read as one text (see :func:`pack_runs`)."""
        return (
            self.config.use_context and self.calibration is not None and self.calibration.run_text
        )

    @property
    def window_messages(self) -> int:
        """The longest run of user messages scored as one text."""
        return self.calibration.window_messages if self.calibration is not None else 2

    def settled(self, conversations: Sequence[Conversation]) -> tuple[list[bool], list[float]]:
        """Per conversation: whether the prefilter settles it, and its prefilter score.

        Without the cascade nothing is settled (scores are 0).
        """
        if self.prefilter is None:
            return [False] * len(conversations), [0.0] * len(conversations)
        scores = [float(s) for s in self.prefilter.scores(conversations)]
        level = self.prefilter.level
        settled = [
            score < level and not any(self._scan(m.content) for _, m in c.user_messages())
            for c, score in zip(conversations, scores, strict=True)
        ]
        return settled, scores

    def screen(self, conversations: Sequence[Conversation]) -> list[ConversationScreen]:
        """Screen a batch; all user messages of the batch are embedded together."""
        if self.prefilter is not None:
            return self._screen_cascade(conversations)
        return self._screen_all(conversations)

    def _screen_cascade(self, conversations: Sequence[Conversation]) -> list[ConversationScreen]:
        """Settle what the prefilter may settle; screen the rest in full."""
        settled, scores = self.settled(conversations)
        pending = [c for c, s in zip(conversations, settled, strict=True) if not s]
        rest = iter(self._screen_all(pending))
        results: list[ConversationScreen] = []
        for conversation, is_settled, score in zip(conversations, settled, scores, strict=True):
            if is_settled:
                user = [index for index, _ in conversation.user_messages()]
                verdict = self._judge_one(conversation, user, None, None)
                details = {"settled_by": SETTLED_BY_PREFILTER, "prefilter_score": score}
            else:
                verdict = next(rest)
                details = {"prefilter_score": score}
            results.append(replace(verdict, details={**verdict.details, **details}))
        return results

    def _screen_all(self, conversations: Sequence[Conversation]) -> list[ConversationScreen]:
        """Every user message of the batch embedded together (and every packed run)."""
        texts: list[str] = []
        for conversation in conversations:
            texts.extend(m.content for _, m in conversation.user_messages())
        probabilities: FloatMatrix | None = None
        embeddings: FloatMatrix | None = None
        tokens: npt.NDArray[np.int64] | None = None
        embedded = self.encoder is not None and self.head is not None and bool(texts)
        if embedded:
            embeddings, probabilities = self._embed_windowed(texts)
            if self._weighting == "tokens" or self._followup_min_tokens or self._run_text:
                assert self.encoder is not None
                tokens = self.encoder.token_counts(texts)
        users = [[index for index, _ in c.user_messages()] for c in conversations]
        starts = np.concatenate(([0], np.cumsum([len(u) for u in users], dtype=np.int64)))
        run_text = self._run_text_probabilities(texts, tokens, starts) if embedded else None
        results: list[ConversationScreen] = []
        for number, (conversation, user) in enumerate(zip(conversations, users, strict=True)):
            rows = slice(int(starts[number]), int(starts[number + 1]))
            probs = probabilities[rows] if probabilities is not None else None
            counts = tokens[rows] if tokens is not None else None
            context = None
            if (
                embeddings is not None
                and self.head is not None
                and self.config.use_context
                and len(user) > 1
            ):
                weights = counts if self._weighting == "tokens" else None
                context = self._run_probabilities(embeddings[rows], weights)
            runs = run_text.get(number) if run_text is not None else None
            results.append(self._judge_one(conversation, user, probs, context, counts, runs))
        return results

    def _run_text_probabilities(
        self,
        texts: list[str],
        tokens: npt.NDArray[np.int64] | None,
        starts: npt.NDArray[np.int64],
    ) -> dict[int, RunTexts] | None:
        """Per conversation of the batch (by position): its packed runs read as one text.

        Each run is scored at its last message (a flagged one is timed where it first reached
        the level, :meth:`_run_completed_at`); all runs of the batch are embedded together.
        """
        if not self._run_text or tokens is None:
            return None
        joined: list[str] = []
        where: list[tuple[int, int, int]] = []
        for number in range(len(starts) - 1):
            first, stop = int(starts[number]), int(starts[number + 1])
            for start, end in pack_runs(tokens[first:stop]):
                joined.append(RUN_SEPARATOR.join(texts[first + start : first + end + 1]))
                where.append((number, start, end))
        if not joined:
            return {}
        _, probabilities = self._embed_windowed(joined)
        out: dict[int, RunTexts] = {}
        for (number, start, end), text, probs in zip(where, joined, probabilities, strict=True):
            out.setdefault(number, {})[end] = (start, text, probs)
        return out

    def _run_completed_at(
        self, texts: list[str], start: int, end: int, category: Category, level: float
    ) -> int:
        """The row at which a flagged packed run first reaches ``level``: the shortest run from
        ``start`` that does (its last row), so the risk is timed where it was complete, not
        where the packing ended. Only flagged runs pay for this."""
        prefixes = [RUN_SEPARATOR.join(texts[start : stop + 1]) for stop in range(start + 1, end)]
        if not prefixes:
            return end
        _, probabilities = self._embed_windowed(prefixes)
        column = self._column[category]
        for stop, probs in zip(range(start + 1, end), probabilities, strict=True):
            if float(probs[column]) >= level:
                return stop
        return end

    def _run_probabilities(
        self, vectors: FloatMatrix, weights: npt.NDArray[np.int64] | None = None
    ) -> FloatMatrix:
        """Per message: the head's probability for the run of up to ``window_messages`` user
        messages ending there (the first message has no run: zeros). With ``weights`` (word
        pieces per message) each embedding counts by its length, as if the run were one text."""
        assert self.head is not None
        k = self.window_messages
        scaled = vectors.astype(np.float64)
        if weights is not None:
            scaled = scaled * np.maximum(weights, 1).astype(np.float64)[:, None]
        cumulative = np.cumsum(scaled, axis=0)
        shifted = np.zeros_like(cumulative)
        shifted[k:] = cumulative[:-k]
        pooled = cumulative - shifted
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        probabilities = np.round(self.head.probabilities(pooled.astype(np.float32)), SCORE_DECIMALS)
        probabilities[0] = 0.0
        return probabilities

    def embed(self, texts: list[str]) -> tuple[FloatMatrix, FloatMatrix]:
        """Per text: the pooled embedding of its windows and the highest window probability."""
        return self._embed_windowed(texts)

    def _embed_windowed(self, texts: list[str]) -> tuple[FloatMatrix, FloatMatrix]:
        """Per message: the mean of its windows' embeddings and the highest window probability.

        A message that fits the encoder is one window, so short text scores exactly as before.
        """
        assert self.encoder is not None and self.head is not None
        windows = [self.encoder.windows(text) for text in texts]
        flat = [w for pieces in windows for w in pieces]
        vectors = self.encoder.encode(flat)
        window_probs = np.round(self.head.probabilities(vectors), SCORE_DECIMALS)
        if len(flat) == len(texts):
            return vectors, window_probs
        counts = np.fromiter((len(p) for p in windows), dtype=np.int64, count=len(windows))
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        probabilities = np.maximum.reduceat(window_probs, starts, axis=0)
        pooled = np.add.reduceat(vectors.astype(np.float64), starts, axis=0)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32), probabilities

    def _judge_one(
        self,
        conversation: Conversation,
        user: list[int],
        probs: FloatMatrix | None,
        context: FloatMatrix | None,
        tokens: npt.NDArray[np.int64] | None = None,
        runs: RunTexts | None = None,
    ) -> ConversationScreen:
        flags = dict.fromkeys(CATEGORIES, False)
        scores = dict.fromkeys(CATEGORIES, 0.0)
        first: dict[Category, int] = {}
        best: dict[Category, tuple[float, Evidence]] = {}
        message_scores: list[MessageScore] = []
        column = self._column
        levels = self.levels("flag")
        followup_min_tokens = self._followup_min_tokens
        user_texts = [conversation.messages[index].content for index in user]
        for row, (index, text) in enumerate(zip(user, user_texts, strict=True)):
            hits = self._scan(text)
            lexical = signal_from_hits(hits)
            suppressed = tuple(
                f"{h.category}:{h.suppressed_by}" for h in hits if h.suppressed_by is not None
            )
            layers: dict[str, dict[Category, float]] = {}
            if self.lexicon is not None:
                layers[LEXICON_LAYER] = lexical
            combined: dict[Category, float] = {}
            for category in CATEGORIES:
                score = lexical[category]
                ctx = 0.0
                if probs is not None:
                    p = float(probs[row, column[category]])
                    layers.setdefault(EMBEDDING_LAYER, {})[category] = p
                    only_suppressed = lexical[category] == 0.0 and any(
                        h.category is category and h.suppressed_by is not None for h in hits
                    )
                    if only_suppressed:
                        p *= self.config.suppressed_damping
                    score = max(score, p)
                if context is not None:
                    ctx = float(context[row, column[category]])
                    layers.setdefault(CONTEXT_LAYER, {})[category] = ctx
                alone = score
                if tokens is not None and not stands_alone(
                    row, int(tokens[row]), lexical[category], followup_min_tokens
                ):
                    alone = 0.0  # a short follow-up counts only inside its runs
                joined = 0.0
                if runs is not None and row in runs:
                    joined = float(runs[row][2][column[category]])
                    layers.setdefault(RUN_TEXT_LAYER, {})[category] = joined
                # what the message level reads of this message alone (the guard reads it as
                # the message's score; a run read as one text reaches it through its own layer,
                # like context, so an addressed disclosure is not answered again every turn);
                # the layers keep the raw scores
                combined[category] = alone
                decisive = max(alone, joined, ctx)
                scores[category] = max(scores[category], decisive)
                level = levels.message[category]
                by_message = alone >= level
                by_context = ctx > 0.0 and ctx >= levels.conversation[category]
                by_run = joined >= level and not by_message and not by_context
                if by_message or by_context or by_run:
                    flags[category] = True
                    at = index
                    if by_run and category not in first:
                        assert runs is not None
                        completed = self._run_completed_at(
                            user_texts, runs[row][0], row, category, level
                        )
                        at = user[completed]
                    first[category] = min(first.get(category, at), at)
                    if category not in best or decisive > best[category][0]:
                        best[category] = (
                            decisive,
                            Evidence(
                                at,
                                category,
                                runs[row][1][:MAX_QUOTE_CHARS],
                                RUN_TEXT_LAYER,
                                decisive,
                            )
                            if by_run and runs is not None
                            else self._evidence(text, index, category, hits, alone, ctx),
                        )
            message_scores.append(MessageScore(index, layers, combined, suppressed))
        evidence = tuple(best[c][1] for c in CATEGORIES if c in best)
        return ConversationScreen(
            conversation.id, flags, scores, first, evidence, tuple(message_scores), self._info
        )

    def _evidence(
        self,
        text: str,
        index: int,
        category: Category,
        hits: list[LexiconHit],
        score: float,
        context_score: float,
    ) -> Evidence:
        for hit in hits:
            if hit.category is category and hit.suppressed_by is None:
                return Evidence(index, category, hit.quote, LEXICON_LAYER, score)
        layer = EMBEDDING_LAYER if score >= context_score else CONTEXT_LAYER
        return Evidence(index, category, text[:MAX_QUOTE_CHARS], layer, max(score, context_score))
