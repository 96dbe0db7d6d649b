"""The cascade's first stage: a cheap n-gram model that settles clear conversations.

Embedding every message is most of an audit's cost (about 88 % on real-length text), yet most
conversations of a deployment are ordinary chat that no layer would flag. The prefilter is a
logistic model over hashed word (1-2) and character (3-5) n-grams, *distilled* from the full
screen: it was trained to predict whether the pinned encoder and calibration would flag a
conversation (or whether the conversation truly carries risk), and its level was set on the
real calibration split below the lowest score of any conversation the full screen flagged
there, with a margin. A conversation is settled (not embedded, not flagged) only when

* the prefilter scores it below that level, taking the highest of its user messages and of
  all its user messages read as one text, and
* the lexicon found no risk word in any user message, not even a negated or figurative one.

Everything else goes to the full screen unchanged, so the cascade can only lose a flag the full
screen would have raised on a conversation the prefilter scores below its level. How often that
happens on held-out text is measured (``benchmarks/screen_cascade.py``) and reported in
``docs/screen-quality.md``; the model file, its weights and the screen it was distilled from
are pinned, so a prefilter is never used in front of another encoder or calibration.

Scoring costs about 0.5 ms per conversation on one core (the encoder: 10-20 ms on real-length
text) and uses scikit-learn's :class:`~sklearn.feature_extraction.text.HashingVectorizer`
(MurmurHash3, the same on every platform), so no vocabulary is stored; scikit-learn is
imported only when the cascade is used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mhsafety.conversation import Conversation
from mhsafety.judges.embedding import ModelFileError, verify_file

FORMAT = "mhsafety-screen-prefilter/1"
PREFILTER_FILE = "screen_prefilter.json"
WEIGHTS_FILE = "screen_prefilter.npy"
HASH_BITS = 18
"""Buckets per n-gram kind are 2**HASH_BITS (word and character n-grams each)."""
SCORE_DECIMALS = 6

FloatArray = npt.NDArray[np.float64]

if TYPE_CHECKING:
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import HashingVectorizer


@dataclass(frozen=True)
class NgramFeatures:
    """Hashed word and character n-gram counts, log-scaled and L2-normalised per text."""

    hash_bits: int = HASH_BITS

    def _vectorizers(self) -> tuple[HashingVectorizer, HashingVectorizer]:
        # imported here: only the cascade needs scikit-learn, and loading it costs ~1 s
        from sklearn.feature_extraction.text import HashingVectorizer

        size = 2**self.hash_bits
        words = HashingVectorizer(
            n_features=size, ngram_range=(1, 2), alternate_sign=False, norm=None
        )
        chars = HashingVectorizer(
            n_features=size,
            analyzer="char_wb",
            ngram_range=(3, 5),
            alternate_sign=False,
            norm=None,
        )
        return words, chars

    @property
    def width(self) -> int:
        """Number of feature columns."""
        return int(2 * 2**self.hash_bits)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """One sparse row per text."""
        import scipy.sparse as sp

        words, chars = self._vectorizers()
        matrix = sp.hstack([words.transform(texts), chars.transform(texts)], format="csr")
        matrix.data = np.log1p(matrix.data)
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0.0] = 1.0
        scaled: sp.csr_matrix = sp.diags(1.0 / norms) @ matrix
        return scaled.tocsr()


def conversation_texts(conversation: Conversation) -> list[str]:
    """What the prefilter reads of a conversation: each user message, and (when there are
    several) all of them joined as one text."""
    texts = [m.content for _, m in conversation.user_messages()]
    if len(texts) > 1:
        texts.append("\n".join(texts))
    return texts


@dataclass(frozen=True)
class Prefilter:
    """A distilled n-gram model and the level below which it settles a conversation."""

    weights: npt.NDArray[np.float32]
    bias: float
    level: float
    encoder_sha256: str
    calibration_sha256: str
    features: NgramFeatures = field(default_factory=NgramFeatures)
    metadata: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""

    def __post_init__(self) -> None:
        if self.weights.shape != (self.features.width,):
            raise ModelFileError(
                f"prefilter weights have shape {self.weights.shape}, "
                f"expected ({self.features.width},)"
            )
        if not 0.0 < self.level < 1.0:
            raise ModelFileError(f"prefilter level {self.level} must be in (0, 1)")

    def probabilities(self, texts: Sequence[str]) -> FloatArray:
        """The model's probability that the full screen would flag each text."""
        if not texts:
            return np.zeros(0)
        logits = np.asarray(self.features.transform(texts) @ self.weights.astype(np.float64))
        probabilities: FloatArray = np.round(
            1.0 / (1.0 + np.exp(-(logits + self.bias))), SCORE_DECIMALS
        )
        return probabilities

    def scores(self, conversations: Sequence[Conversation]) -> FloatArray:
        """Per conversation: the highest probability over :func:`conversation_texts`."""
        texts: list[str] = []
        owners: list[int] = []
        for row, conversation in enumerate(conversations):
            pieces = conversation_texts(conversation)
            texts.extend(pieces)
            owners.extend([row] * len(pieces))
        out = np.zeros(len(conversations))
        if texts:
            np.maximum.at(out, np.asarray(owners), self.probabilities(texts))
        return out

    def to_json(self, weights_sha256: str) -> dict[str, Any]:
        """The sidecar's serialisable form (the weights go to their own ``.npy`` file)."""
        return {
            "format": FORMAT,
            "weights_file": WEIGHTS_FILE,
            "weights_sha256": weights_sha256,
            "hash_bits": self.features.hash_bits,
            "bias": self.bias,
            "level": self.level,
            "distilled_from": {
                "encoder_sha256": self.encoder_sha256,
                "calibration_sha256": self.calibration_sha256,
            },
            "metadata": self.metadata,
        }

    @classmethod
    def load(cls, path: Path, expected_sha256: str) -> Prefilter:
        """Load the sidecar and its weights, each checked against its sha256."""
        verify_file(path, expected_sha256, "screen prefilter")
        data = json.loads(path.read_text("utf-8"))
        if data.get("format") != FORMAT:
            raise ModelFileError(f"{path}: unknown prefilter format {data.get('format')!r}")
        weights_path = path.parent / str(data["weights_file"])
        verify_file(weights_path, str(data["weights_sha256"]), "screen prefilter weights")
        weights = np.load(weights_path, allow_pickle=False)
        if weights.dtype != np.float32:
            raise ModelFileError(f"{weights_path}: weights must be float32, not {weights.dtype}")
        source = data["distilled_from"]
        return cls(
            weights,
            float(data["bias"]),
            float(data["level"]),
            str(source["encoder_sha256"]),
            str(source["calibration_sha256"]),
            NgramFeatures(int(data["hash_bits"])),
            dict(data.get("metadata", {})),
            expected_sha256,
        )


__all__ = ["PREFILTER_FILE", "WEIGHTS_FILE", "NgramFeatures", "Prefilter", "conversation_texts"]
