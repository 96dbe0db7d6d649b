"""Pinned sha256 of trained model files (rewritten by scripts/train_screen_head.py)."""

SCREEN_HEAD_SHA256 = "unset"
