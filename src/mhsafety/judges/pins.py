"""Pinned sha256 of trained model files.

Rewritten by scripts/train_screen_head.py (the frozen baseline head) and
scripts/finetune_screen_encoder.py (the fine-tuned encoder and its sidecar).
"""

SCREEN_HEAD_SHA256 = "a727f474a2531102cf81cd9752c7841555590ca12e9a9228b95c43a8c6595732"
SCREEN_ENCODER_SHA256 = "b8480d70df94bf98b81819c4a031b3a2cde7aa337a371acbf777e091a2cd0945"
SCREEN_ENCODER_SIDECAR_SHA256 = "31be9cc59fbc2bbe237b436969c8f9a87c9417184e310ed4520cc4b225284581"
SCREEN_CALIBRATION_SHA256 = "f2c283279d27a9f2c9391ffad41f3da032c6ed6704c87f62b245aee8d8a87d9b"
