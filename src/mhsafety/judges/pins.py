"""Pinned sha256 of trained model files (rewritten by scripts/train_screen_head.py)."""

SCREEN_HEAD_SHA256 = "a727f474a2531102cf81cd9752c7841555590ca12e9a9228b95c43a8c6595732"
