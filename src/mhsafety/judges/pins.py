"""Pinned sha256 of trained model files (rewritten by scripts/train_screen_head.py)."""

SCREEN_HEAD_SHA256 = "27ac739774e27a8e0c65cd69c47de0af304f9375eb1a8804c0a8b97c1249a5a2"
