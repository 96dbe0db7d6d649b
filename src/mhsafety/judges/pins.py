"""Pinned sha256 of trained model files (rewritten by scripts/train_screen_head.py)."""

SCREEN_HEAD_SHA256 = "a7424f41fa0955519ba9082c6400e8866ae3def2cfe1b7f497a8785a397369c2"
