"""Pinned sha256 of trained model files.

Rewritten by scripts/train_screen_head.py (the frozen baseline head) and
scripts/finetune_screen_encoder.py (the fine-tuned encoder and its sidecar).
"""

SCREEN_HEAD_SHA256 = "a727f474a2531102cf81cd9752c7841555590ca12e9a9228b95c43a8c6595732"
SCREEN_ENCODER_SHA256 = "f4b98f3190eee4efd334773a3ba08a6f128497f63cf382e599186e518769bd6e"
SCREEN_ENCODER_SIDECAR_SHA256 = "f88ac75c75975d2d799a45ff954ca9e177f1c73a4aeef13638ee57ce1bd651f3"
