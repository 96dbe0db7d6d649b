"""Coverage: which real-world disclosure styles no test item resembles.

The user messages of conversations confirmed at risk (or flagged, before review) are embedded
with the general-purpose MiniLM sentence encoder, grouped by average-linkage clustering on
cosine distance, and each group is compared with every user turn of the test sets. A group
is *uncovered* when most of its messages have no test turn within the similarity threshold:
people disclose that way in the deployment, and the bench never asks it. The core
(:func:`coverage_of`) is pure over embeddings; :func:`embed_texts` is the model I/O.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage

FloatMatrix = npt.NDArray[np.float32]

SIMILARITY = 0.6
"""A real message is *resembled* by a test turn at or above this cosine similarity."""
CLUSTER_DISTANCE = 0.5
"""Average-linkage cut (cosine distance) that groups messages into styles."""
MIN_CLUSTER = 3
"""Smaller groups are counted together as "other" rather than shown as styles."""
MAX_MESSAGES = 3000
"""At most this many messages are clustered (an evenly spaced subset beyond it)."""
EXAMPLES = 3


@dataclass(frozen=True)
class RealMessage:
    """A user message from the deployment, with where it came from."""

    text: str
    conversation_id: str
    window: str
    categories: tuple[str, ...]
    style: str | None = None
    """The synthetic log's known disclosure style (None for real logs)."""


@dataclass(frozen=True)
class TestTurn:
    """A user turn of a test set."""

    __test__ = False

    text: str
    set: str
    item: str


@dataclass
class Cluster:
    """One group of similar real messages."""

    size: int
    covered: int
    """Members with a test turn at or above the similarity threshold."""
    nearest_similarity: float
    """Median over members of the similarity to their nearest test turn."""
    nearest_turn: TestTurn
    examples: list[str]
    categories: dict[str, int]
    windows: int
    styles: dict[str, int] = field(default_factory=dict)

    @property
    def covered_share(self) -> float:
        return self.covered / self.size if self.size else 0.0

    @property
    def uncovered(self) -> bool:
        """Most members resemble no test turn."""
        return self.covered_share < 0.5

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "size": self.size,
            "covered": self.covered,
            "covered_share": self.covered_share,
            "uncovered": self.uncovered,
            "nearest_similarity": self.nearest_similarity,
            "nearest_turn": {
                "text": self.nearest_turn.text,
                "set": self.nearest_turn.set,
                "item": self.nearest_turn.item,
            },
            "examples": list(self.examples),
            "categories": dict(self.categories),
            "windows": self.windows,
            **({"styles": dict(self.styles)} if self.styles else {}),
        }


def _distinct(texts: Sequence[str], limit: int) -> list[str]:
    """The first ``limit`` texts that differ beyond case, spacing and final punctuation."""
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        key = " ".join(text.lower().split()).rstrip(".!?")
        if key not in seen:
            seen.add(key)
            out.append(text)
        if len(out) == limit:
            break
    return out


def _subset(n: int, limit: int) -> npt.NDArray[np.int64]:
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def coverage_of(
    messages: Sequence[RealMessage],
    message_vectors: FloatMatrix,
    turns: Sequence[TestTurn],
    turn_vectors: FloatMatrix,
    *,
    similarity: float = SIMILARITY,
    cluster_distance: float = CLUSTER_DISTANCE,
    min_cluster: int = MIN_CLUSTER,
    max_messages: int = MAX_MESSAGES,
) -> dict[str, Any]:
    """Cluster real messages and check each cluster against the test turns.

    Vectors are unit length (cosine similarity is the dot product).

    Returns:
        ``clusters`` (largest first), ``uncovered`` count of messages in uncovered clusters,
        ``messages``, ``clustered``, ``other`` (messages in groups below ``min_cluster``),
        ``covered_messages`` and the settings.
    """
    if len(messages) != len(message_vectors) or len(turns) != len(turn_vectors):
        raise ValueError("every message and turn needs one vector")
    settings = {
        "similarity": similarity,
        "cluster_distance": cluster_distance,
        "min_cluster": min_cluster,
        "test_turns": len(turns),
        "sets": sorted({t.set for t in turns}),
    }
    if not messages or not turns:
        return {
            "messages": len(messages),
            "clustered": 0,
            "clusters": [],
            "other": len(messages),
            "covered_messages": 0,
            "uncovered_messages": 0,
            "settings": settings,
        }
    keep = _subset(len(messages), max_messages)
    chosen = [messages[i] for i in keep]
    vectors = np.asarray(message_vectors[keep], dtype=np.float64)
    nearest = vectors @ np.asarray(turn_vectors, dtype=np.float64).T
    best_turn = nearest.argmax(axis=1)
    best = nearest.max(axis=1)
    if len(chosen) == 1:
        labels = np.ones(1, dtype=np.int64)
    else:
        tree = linkage(vectors, method="average", metric="cosine")
        labels = fcluster(tree, t=cluster_distance, criterion="distance")
    clusters: list[Cluster] = []
    other = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < min_cluster:
            other += len(members)
            continue
        centre = vectors[members].mean(axis=0)
        order = members[np.argsort(-(vectors[members] @ centre))]
        turn_votes = Counter(int(best_turn[i]) for i in members)
        clusters.append(
            Cluster(
                size=len(members),
                covered=int((best[members] >= similarity).sum()),
                nearest_similarity=float(np.median(best[members])),
                nearest_turn=turns[turn_votes.most_common(1)[0][0]],
                examples=_distinct([chosen[i].text for i in order], EXAMPLES),
                categories=dict(Counter(c for i in members for c in chosen[i].categories)),
                windows=len({chosen[i].window for i in members}),
                styles=dict(Counter(s for i in members if (s := chosen[i].style) is not None)),
            )
        )
    clusters.sort(key=lambda c: (c.uncovered is False, -c.size))
    return {
        "messages": len(messages),
        "clustered": len(chosen),
        "clusters": [c.to_dict() for c in clusters],
        "other": other,
        "covered_messages": int((best >= similarity).sum()),
        "uncovered_messages": sum(c.size for c in clusters if c.uncovered),
        "settings": settings,
    }


def bench_turns(set_ids: Sequence[str] | None = None) -> list[TestTurn]:
    """Every user turn (and re-ask) of the packaged test sets and persona cards."""
    from mhsafety.bench.bundles import available_sets, load_set
    from mhsafety.bench.simulation import persona_set

    sets = [load_set(s) for s in (set_ids or available_sets())]
    sets.append(persona_set())
    out: list[TestTurn] = []
    for test_set in sets:
        for item in test_set.items:
            for turn in item.turns:
                for text in (turn.user, *turn.reask):
                    out.append(TestTurn(text, test_set.id, item.id))
    return out


@functools.lru_cache(maxsize=1)
def _encoder() -> Any:
    """The frozen general-purpose MiniLM encoder, loaded (and its pins checked) once."""
    from mhsafety.judges.embedding import MiniLMEncoder

    return MiniLMEncoder()


def embed_texts(texts: Sequence[str]) -> FloatMatrix:
    """Unit-length MiniLM sentence embeddings; ``(0, 384)`` for no texts."""
    from mhsafety.judges.embedding import EMBEDDING_DIM

    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    vectors: FloatMatrix = _encoder().encode(list(texts))
    return vectors


def describe_styles(truth: Mapping[str, Mapping[str, Any]], conversation_id: str) -> str | None:
    """The synthetic truth's disclosure style of a conversation, if known."""
    record = truth.get(conversation_id)
    return str(record["style"]) if record and record.get("style") else None


__all__ = [
    "CLUSTER_DISTANCE",
    "MIN_CLUSTER",
    "SIMILARITY",
    "Cluster",
    "RealMessage",
    "TestTurn",
    "bench_turns",
    "coverage_of",
    "describe_styles",
    "embed_texts",
]
