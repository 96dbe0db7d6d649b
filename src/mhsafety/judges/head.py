"""Per-category logistic-regression heads on frozen sentence embeddings.

The trained weights are a small JSON file (``data/models/screen_head.json``) written by
``scripts/train_screen_head.py``; its sha256 is pinned in :mod:`mhsafety.judges.pins` and
checked at load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from mhsafety.judges.embedding import EMBEDDING_DIM, ModelFileError, verify_file
from mhsafety.judges.pins import SCREEN_HEAD_SHA256
from mhsafety.taxonomy import Category

FloatArray = npt.NDArray[np.float64]


def default_head_path() -> Path:
    """The packaged, trained head."""
    return Path(str(resources.files("mhsafety") / "data" / "models" / "screen_head.json"))


@dataclass(frozen=True)
class LinearHead:
    """One logistic regression per category over 384-d embeddings."""

    categories: tuple[Category, ...]
    weights: FloatArray  # (categories, dim)
    bias: FloatArray  # (categories,)
    thresholds: dict[Category, float]
    metadata: dict[str, Any]
    sha256: str = ""

    def probabilities(self, embeddings: npt.NDArray[np.float32]) -> FloatArray:
        """``(n, categories)`` probabilities for ``(n, dim)`` embeddings."""
        logits = embeddings.astype(np.float64) @ self.weights.T + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -40.0, 40.0)))

    def to_json(self) -> dict[str, Any]:
        """The serialisable form (weights rounded to 6 significant digits)."""
        return {
            "format": "mhsafety-linear-head/1",
            "categories": [str(c) for c in self.categories],
            "dim": int(self.weights.shape[1]),
            "weights": [[float(f"{w:.6g}") for w in row] for row in self.weights],
            "bias": [float(f"{b:.6g}") for b in self.bias],
            "thresholds": {str(c): round(t, 6) for c, t in self.thresholds.items()},
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], sha256: str = "") -> LinearHead:
        """Build a head from its serialised form, checking shapes."""
        if data.get("format") != "mhsafety-linear-head/1":
            raise ModelFileError(f"unknown head format {data.get('format')!r}")
        categories = tuple(Category(c) for c in data["categories"])
        weights = np.asarray(data["weights"], dtype=np.float64)
        bias = np.asarray(data["bias"], dtype=np.float64)
        if weights.shape != (len(categories), EMBEDDING_DIM) or bias.shape != (len(categories),):
            raise ModelFileError(f"head weights have shape {weights.shape}, bias {bias.shape}")
        thresholds = {Category(c): float(t) for c, t in data["thresholds"].items()}
        return cls(categories, weights, bias, thresholds, dict(data.get("metadata", {})), sha256)

    @classmethod
    def load(cls, path: Path | None = None, *, expected_sha256: str | None = None) -> LinearHead:
        """Load a head, refusing a file whose sha256 is not the pinned one.

        Args:
            path: The head JSON; the packaged head by default.
            expected_sha256: Pin to check; the packaged pin by default. A custom head file
                needs its own pin (pass ``sha256_file(path)`` deliberately to trust it).
        """
        path = path or default_head_path()
        expected = expected_sha256 or SCREEN_HEAD_SHA256
        verify_file(path, expected, "screen head")
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")), expected)


def fit_logistic(
    features: npt.NDArray[np.float32],
    targets: npt.NDArray[np.bool_],
    *,
    l2: float = 1e-2,
    positive_weight: float | None = None,
) -> tuple[FloatArray, float]:
    """L2-regularised logistic regression by L-BFGS (deterministic).

    Args:
        features: ``(n, dim)`` inputs.
        targets: ``(n,)`` booleans.
        l2: Penalty on the weights (not the bias), per example.
        positive_weight: Weight of positive examples; balanced classes by default.

    Returns:
        ``(weights, bias)``.
    """
    x = features.astype(np.float64)
    y = targets.astype(np.float64)
    n_pos = max(float(y.sum()), 1.0)
    n_neg = max(float(len(y) - y.sum()), 1.0)
    w_pos = positive_weight if positive_weight is not None else n_neg / n_pos
    sample_weight = np.where(y > 0, w_pos, 1.0)
    sample_weight = sample_weight / sample_weight.mean()
    n, dim = x.shape

    def loss(params: FloatArray) -> tuple[float, FloatArray]:
        w, b = params[:dim], params[dim]
        z = x @ w + b
        # log(1 + exp(-y*z)) in a stable form, with y in {-1, +1}
        sign = 2.0 * y - 1.0
        margin = sign * z
        log_loss = np.logaddexp(0.0, -margin)
        value = float((sample_weight * log_loss).sum() / n + 0.5 * l2 * (w @ w))
        prob = 1.0 / (1.0 + np.exp(np.clip(margin, -40, 40)))
        grad_z = -sign * prob * sample_weight / n
        grad = np.empty(dim + 1)
        grad[:dim] = x.T @ grad_z + l2 * w
        grad[dim] = grad_z.sum()
        return value, grad

    result = minimize(loss, np.zeros(dim + 1), jac=True, method="L-BFGS-B")
    params = np.asarray(result.x, dtype=np.float64)
    return params[:dim], float(params[dim])


__all__ = ["LinearHead", "default_head_path", "fit_logistic"]
