"""The embedded screening judge: lexicon/pattern layer + MiniLM embeddings with a trained head.

Offline, no torch. Each layer reports what it saw per user message; only user messages decide
flags. A conversation is flagged for a category when

* one user message's combined score reaches the category threshold, or
* the running mean of the user-message embeddings up to some message does (risk that only
  builds up over several turns).

The combined score of a message is the larger of the lexicon signal and the embedding head's
probability; when the lexicon found only negated or figurative uses of risk words in that
message ("I would never hurt myself", "this exam is killing me"), the head's probability is
damped so a lookalike needs a clearly risky embedding to count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mhsafety.conversation import Conversation
from mhsafety.judges.base import ConversationScreen, Evidence, JudgeInfo, MessageScore
from mhsafety.judges.embedding import MiniLMEncoder
from mhsafety.judges.head import LinearHead
from mhsafety.judges.lexicon import Lexicon, LexiconHit
from mhsafety.judges.screen_model import ModelVariant, load_screen_model
from mhsafety.taxonomy import CATEGORIES, Category

JUDGE_NAME = "mhsafety-embedded"
JUDGE_VERSION = "1.0.0"
LEXICON_LAYER = "lexicon"
EMBEDDING_LAYER = "embedding"
CONTEXT_LAYER = "context"
MAX_QUOTE_CHARS = 240
SCAN_CACHE_SIZE = 200_000
STRENGTH_SIGNAL: dict[str, float] = {"explicit": 1.0, "coded": 0.9, "contextual": 0.5}
"""Lexicon signal per pattern strength (contextual terms alone stay below most thresholds)."""

FloatMatrix = npt.NDArray[np.float64] | npt.NDArray[np.float32]


def signal_from_hits(hits: Sequence[LexiconHit]) -> dict[Category, float]:
    """Per-category lexicon signal: the strongest hit that was not negated or figurative."""
    signal = dict.fromkeys(CATEGORIES, 0.0)
    for hit in hits:
        if hit.suppressed_by is None:
            signal[hit.category] = max(signal[hit.category], STRENGTH_SIGNAL[hit.strength])
    return signal


@dataclass(frozen=True)
class EmbeddedJudgeConfig:
    """Knobs of the embedded judge (the head's thresholds come with the trained head)."""

    suppressed_damping: float = 0.6
    """Multiplier on the head's probability for a message whose risk words were all negated
    or figurative."""
    use_context: bool = True
    """Also score the running mean of user-message embeddings (build-up over turns)."""
    threshold_offset: float = 0.0
    """Added to every category threshold (negative = more recall, less precision)."""
    use_lexicon: bool = True
    """Run the lexicon/pattern layer (off: the embedding head alone)."""
    use_embedding: bool = True
    """Run the embedding head (off: the lexicon alone, which flags at signal >= 0.5)."""
    model: ModelVariant = "finetuned"
    """Which embedding-layer model: the fine-tuned encoder or the frozen baseline."""


class EmbeddedJudge:
    """Lexicon + embedding-head screening judge; see the module docstring."""

    LEXICON_ONLY_THRESHOLD = 0.5

    def __init__(
        self,
        *,
        lexicon: Lexicon | None = None,
        encoder: MiniLMEncoder | None = None,
        head: LinearHead | None = None,
        config: EmbeddedJudgeConfig | None = None,
    ) -> None:
        self.config = config or EmbeddedJudgeConfig()
        if not (self.config.use_lexicon or self.config.use_embedding):
            raise ValueError("the embedded judge needs at least one layer")
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
            self.encoder, self.head = encoder, head
            details |= {
                "encoder": self.encoder.info.name,
                "encoder_sha256": self.encoder.info.model_sha256,
                "head_sha256": self.head.sha256,
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

    def threshold(self, category: Category) -> float:
        """The decision threshold for a category."""
        base = (
            self.head.thresholds[category] if self.head is not None else self.LEXICON_ONLY_THRESHOLD
        )
        return base + self.config.threshold_offset

    def screen(self, conversations: Sequence[Conversation]) -> list[ConversationScreen]:
        """Screen a batch; all user messages of the batch are embedded together."""
        texts: list[str] = []
        for conversation in conversations:
            texts.extend(m.content for _, m in conversation.user_messages())
        probabilities: FloatMatrix | None = None
        embeddings: FloatMatrix | None = None
        if self.encoder is not None and self.head is not None and texts:
            embeddings, probabilities = self._embed_windowed(texts)
        results: list[ConversationScreen] = []
        offset = 0
        for conversation in conversations:
            user = [index for index, _ in conversation.user_messages()]
            rows = slice(offset, offset + len(user))
            offset += len(user)
            probs = probabilities[rows] if probabilities is not None else None
            context = None
            if (
                embeddings is not None
                and self.head is not None
                and self.config.use_context
                and len(user) > 1
            ):
                running = np.cumsum(embeddings[rows].astype(np.float64), axis=0)
                running /= np.maximum(np.linalg.norm(running, axis=1, keepdims=True), 1e-12)
                context = self.head.probabilities(running.astype(np.float32))
            results.append(self._judge_one(conversation, user, probs, context))
        return results

    def _embed_windowed(self, texts: list[str]) -> tuple[FloatMatrix, FloatMatrix]:
        """Per message: the mean of its windows' embeddings and the highest window probability.

        A message that fits the encoder is one window, so short text scores exactly as before.
        """
        assert self.encoder is not None and self.head is not None
        windows = [self.encoder.windows(text) for text in texts]
        flat = [w for pieces in windows for w in pieces]
        vectors = self.encoder.encode(flat)
        window_probs = self.head.probabilities(vectors)
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
    ) -> ConversationScreen:
        flags = dict.fromkeys(CATEGORIES, False)
        scores = dict.fromkeys(CATEGORIES, 0.0)
        first: dict[Category, int] = {}
        best: dict[Category, tuple[float, Evidence]] = {}
        message_scores: list[MessageScore] = []
        column = self._column
        for row, index in enumerate(user):
            text = conversation.messages[index].content
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
                combined[category] = score
                decisive = max(score, ctx)
                scores[category] = max(scores[category], decisive)
                if decisive >= self.threshold(category):
                    flags[category] = True
                    first.setdefault(category, index)
                    if category not in best or decisive > best[category][0]:
                        best[category] = (
                            decisive,
                            self._evidence(text, index, category, hits, score, ctx),
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
